"""Depthwise conv1d + SiLU alone (the Triton kernels in front of every Hydra mixer): forward and
backward time, each kernel's share, and the bandwidth they reach against the fewest bytes the
operation must move.

Shapes are hydra_vit_base's (C = d_inner + 4 d_state = 1,792 channels, K = 7): 128 x 196 tokens
(224 px) and 8 x 4,096 (1,024 px) by default. x is a strided slice of an in_proj-like output, as in
the model. One header line, then one JSON line per (shape, pass): median ms (do_bench), the kernels'
device time per call (torch.profiler), the bytes the pass must move (forward: read x, write y;
backward: read x and dy, write dx) and what fraction of the device's copy bandwidth that is.

    python benchmarks/bench_conv.py [--shapes 128x196 8x4096] [--channels 1792] [--segment 128] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import emit, env_header, time_ms  # noqa: E402

from hydra_vision.kernels.dwconv import triton_conv  # noqa: E402
from hydra_vision.kernels.launcher import triton_kernel  # noqa: E402


def min_bytes(batch: int, L: int, C: int, itemsize: int, mode: str) -> int:
    """Bytes a pass must move at least: the forward reads x and writes y, the backward reads x and dy
    and writes dx (the weights and their gradient are negligible)."""
    tensors = {"fwd": 2, "bwd": 3}[mode]
    return tensors * batch * L * C * itemsize


def copy_gbps(numel: int, dtype: torch.dtype) -> float:
    """The device's achieved copy bandwidth (GB/s, read + write) on a tensor of this size: the yardstick."""
    src = torch.empty(numel, device="cuda", dtype=dtype)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))["ms"]
    return 2 * numel * src.element_size() / ms / 1e6


def kernel_us(fn, steps: int = 10) -> dict[str, float]:
    """Device time per call of fn() (us) of every kernel it launches, by name."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    return {e.key: round(e.device_time_total / steps, 1) for e in prof.key_averages() if e.device_time_total > 0}


def picked_configs() -> dict[str, str]:
    """The autotuner's choice per conv kernel so far (at the last shape it tuned), whatever kernels this
    source tree has (`_conv_*_kernel`)."""
    names = sorted(n for n in vars(triton_conv) if n.startswith("_conv_") and n.endswith("_kernel"))
    return {name: str(getattr(triton_kernel(getattr(triton_conv, name)), "best_config", None)) for name in names}


def parse_shape(text: str) -> tuple[int, int]:
    batch, _, L = text.partition("x")
    if not (batch.isdigit() and L.isdigit()):
        raise argparse.ArgumentTypeError(f"a shape is BATCHxLENGTH, e.g. 128x196; got {text!r}")
    return int(batch), int(L)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=[(128, 196), (8, 4096)])
    parser.add_argument("--channels", type=int, default=1792)
    parser.add_argument("--width", type=int, default=7, help="kernel size K")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--segment", type=int, help="override the kernels' SEGMENT (tokens per program)")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("bench_conv.py times CUDA kernels: no CUDA device")
    dtype, C, K = getattr(torch, args.dtype), args.channels, args.width
    if args.segment:
        triton_conv.SEGMENT = args.segment
    stream = args.out.open("a") if args.out else None
    emit({**env_header(), "bench": "conv", "C": C, "K": K, "dtype": args.dtype,
          "segment": triton_conv.SEGMENT}, stream)
    for batch, L in args.shapes:
        wide = torch.randn(batch, L, 2 * C, device="cuda", dtype=dtype)
        x = wide[..., C // 2: C // 2 + C]  # a strided slice, as of in_proj's output
        w = 0.3 * torch.randn(C, 1, K, device="cuda", dtype=dtype)
        b = 0.1 * torch.randn(C, device="cuda", dtype=dtype)
        dy = torch.randn(batch, L, C, device="cuda", dtype=dtype)
        passes = {
            "fwd": lambda: triton_conv._conv_forward(x, w, b, False, C),
            "bwd": lambda: triton_conv._conv_backward(dy, x, w, b, False, C),
        }
        yardstick = copy_gbps(batch * L * C, dtype)
        for mode, fn in passes.items():
            fn()  # compile and autotune outside the timed region
            stats = time_ms(fn, warmup_ms=50, rep_ms=300)
            moved = min_bytes(batch, L, C, x.element_size(), mode)
            gbps = moved / stats["ms"] / 1e6
            emit({"kind": "case", "batch": batch, "L": L, "mode": mode, **stats, "kernels_us": kernel_us(fn),
                  "min_bytes": moved, "gbps": round(gbps, 1), "copy_gbps": round(yardstick, 1),
                  "of_copy": round(gbps / yardstick, 3), "configs": picked_configs()}, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
