"""The kernels around the mix alone (the "shell" of a Hydra block): depthwise conv1d + SiLU, gated
RMSNorm and the block's LayerNorm, forward and backward (the gated norm's also as `bwd_y`, which writes the
forward's output again for out_proj's weight gradient under selective recompute), and the per-token diagonal's
backward (the Triton pass and torch's addmm + GEMM it replaces), at hydra_vit_base's shapes. Per pass: the
median time, each kernel's device time, the bytes the pass must move and what fraction of the
device's copy bandwidth that makes.

Widths are hydra_vit_base's: the conv over C = d_inner + 4 d_state = 1,792 channels (K = 7, x a
strided slice of an in_proj-like output), the gated norm over d_inner = 1,536 (z a slice of it too),
the LayerNorm over d_model = 768, the diagonal over the first 1,536 channels of the conv output's rows
and 24 heads. Token shapes: 128 x 196 (224 px) and 8 x 4,096 (1,024 px) by default. One header line, then
one JSON line per (op, shape, pass).

    python benchmarks/bench_shell.py [--ops conv gated_norm layernorm diagonal] [--shapes 128x196 8x4096]
                                     [--segment 128] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import copy_gbps, emit, env_header, kernel_us, time_ms  # noqa: E402

from hydra_vision.kernels.dwconv import triton_conv  # noqa: E402
from hydra_vision.kernels.gated_rmsnorm import triton_norm  # noqa: E402
from hydra_vision.kernels.launcher import triton_kernel  # noqa: E402
from hydra_vision.kernels.layernorm import triton_layernorm  # noqa: E402
from hydra_vision.kernels.token_diagonal import token_diagonal_backward_into  # noqa: E402

IN_PROJ = 3376  # hydra_vit_base's in_proj output: z (1,536) | xBC (1,792) | dt (48)
WIDTHS = {"conv": 1792, "gated_norm": 1536, "layernorm": 768, "diagonal": 1536}
# tensors of the op's width each pass must read or write at least (weights and their gradients aside)
TENSORS = {"conv": {"fwd": 2, "bwd": 3}, "gated_norm": {"fwd": 3, "bwd": 5, "bwd_y": 6},
           "layernorm": {"fwd": 2, "bwd": 3}, "diagonal": {"bwd": 3, "bwd_torch": 3}}


def min_bytes(op: str, mode: str, tokens: int, itemsize: int) -> int:
    """Bytes a pass must move at least: conv forward x in, y out; backward x, dy in, dx out. Gated norm
    forward x, z in, y out; backward dy, x, z in, dx, dz out. LayerNorm forward x in, y out; backward
    dy, x in, dx out."""
    return TENSORS[op][mode] * tokens * WIDTHS[op] * itemsize


def passes(op: str, batch: int, L: int, dtype: torch.dtype,
           device: str = "cuda") -> dict[str, Callable[[], object]]:
    """The op's forward and backward on random inputs laid out as in the model (weights in fp32, as the
    model's parameters under autocast)."""
    if op not in WIDTHS:
        raise ValueError(f"unknown op {op!r}: one of {sorted(WIDTHS)}")
    dev = dict(device=device, dtype=dtype)
    proj = torch.randn(batch, L, IN_PROJ, **dev)
    if op == "conv":
        x, C = proj[..., 1536:3328], WIDTHS["conv"]
        w, b = 0.3 * torch.randn(C, 1, 7, device=device), 0.1 * torch.randn(C, device=device)
        dy = torch.randn(batch, L, C, **dev)
        return {"fwd": lambda: triton_conv._conv_forward(x, w, b, False, C),
                "bwd": lambda: triton_conv._conv_backward(dy, x, w, b, False, C)}
    if op == "gated_norm":
        D = WIDTHS["gated_norm"]
        x, z = 3 * torch.randn(batch, L, D, **dev), proj[..., :D]
        w, dy = 1 + 0.5 * torch.randn(D, device=device), torch.randn(batch, L, D, **dev)
        _, rstd = triton_norm._norm_forward(x, z, w, 1e-5)
        return {"fwd": lambda: triton_norm._norm_forward(x, z, w, 1e-5),
                "bwd": lambda: triton_norm._norm_backward(dy, x, z, w, rstd),
                "bwd_y": lambda: triton_norm.norm_backward_into(dy, x, z, w, rstd, torch.empty_like(x),
                                                                torch.empty_like(x))}
    if op == "diagonal":
        C, H = WIDTHS["diagonal"], 24
        xbc, dxbc = (torch.randn(batch * L, WIDTHS["conv"], **dev) for _ in range(2))
        x, dx, g = xbc[:, :C], dxbc[:, :C], torch.randn(batch * L, H, **dev)
        w = torch.randn(H, C, device=device) / C**0.5

        def torch_pass():  # the fused layer's backward before token_diagonal
            dx.addmm_(g, w.to(dtype))
            return dx.view(batch, L, -1), (g.t() @ x).float(), g.float().sum(0)
        return {"bwd": lambda: (dx.view(batch, L, -1), *token_diagonal_backward_into(dx, x, g, w)),
                "bwd_torch": torch_pass}
    D = WIDTHS["layernorm"]
    x, dy = 2 + 3 * torch.randn(batch, L, D, **dev), torch.randn(batch, L, D, **dev)
    w, b = 1 + 0.5 * torch.randn(D, device=device), 0.1 * torch.randn(D, device=device)
    _, mean, rstd = triton_layernorm._ln_forward(x, w, b, 1e-6, dtype)
    return {"fwd": lambda: triton_layernorm._ln_forward(x, w, b, 1e-6, dtype),
            "bwd": lambda: triton_layernorm._ln_backward(dy, x, w, b, mean, rstd)}


def picked_configs() -> dict[str, str]:
    """The autotuner's choice so far for every autotuned conv kernel this source tree has (`_conv_*_kernel`)."""
    names = sorted(n for n in vars(triton_conv) if n.startswith("_conv_") and n.endswith("_kernel"))
    return {name: str(getattr(triton_kernel(getattr(triton_conv, name)), "best_config", None)) for name in names}


def parse_shape(text: str) -> tuple[int, int]:
    batch, _, L = text.partition("x")
    if not (batch.isdigit() and L.isdigit()):
        raise argparse.ArgumentTypeError(f"a shape is BATCHxLENGTH, e.g. 128x196; got {text!r}")
    return int(batch), int(L)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="+", default=list(WIDTHS), choices=list(WIDTHS))
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=[(128, 196), (8, 4096)])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--segment", type=int, help="override the conv kernels' SEGMENT (tokens per program)")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("bench_shell.py times CUDA kernels: no CUDA device")
    dtype = getattr(torch, args.dtype)
    if args.segment:
        triton_conv.SEGMENT = args.segment
    stream = args.out.open("a") if args.out else None
    emit({**env_header(), "bench": "shell", "dtype": args.dtype, "widths": WIDTHS,
          "conv_segment": triton_conv.SEGMENT}, stream)
    for batch, L in args.shapes:
        yardstick = copy_gbps(batch * L * max(WIDTHS.values()), dtype)
        for op in args.ops:
            for mode, fn in passes(op, batch, L, dtype).items():
                fn()  # compile and autotune outside the timed region
                stats = time_ms(fn, warmup_ms=50, rep_ms=300)
                moved = min_bytes(op, mode, batch * L, dtype.itemsize)
                gbps = moved / stats["ms"] / 1e6
                record = {"kind": "case", "op": op, "batch": batch, "L": L, "mode": mode, **stats,
                          "kernels_us": kernel_us(fn), "min_bytes": moved, "gbps": round(gbps, 1),
                          "copy_gbps": round(yardstick, 1), "of_copy": round(gbps / yardstick, 3)}
                if op == "conv":
                    record["configs"] = picked_configs()
                emit(record, stream)
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
