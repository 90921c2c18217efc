"""The PyTorch path's speed: the `reference` backend of the mix per chunk length, on a CPU (or any device).

For each length L (batch = tokens // L) and mode (fwd, fwd+bwd), the reference at every chunk length of
`--chunks` (`quasiseparable_mix_reference` with that Q exactly) and as the dispatcher runs it
(`quasiseparable_mix(..., backend="reference")` with chunk_size 256: `reference_chunk`'s Q). Inputs
as in bench_mixer (fp32 by default: the reference computes in fp32 anyway). Defaults: hydra_vit_tiny's
mixer (d_model 192: 6 heads of 64, N = 64) over 8 images of 196 tokens.

    python benchmarks/bench_reference.py [--lengths 196 577 1025 4097] [--chunks 16 32 64 256] [--out FILE]

One header line, then one JSON line per case: L, batch, mode, case ("Q16" ... or "dispatch"), Q,
median ms (20/80% quantiles), tokens/s; the peak memory on CUDA.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mixer import make_inputs, run_case  # noqa: E402
from timing import emit, env_header  # noqa: E402

from hydra_vision.kernels import quasiseparable_mix  # noqa: E402
from hydra_vision.kernels.quasiseparable.reference import quasiseparable_mix_reference, reference_chunk  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[196, 577, 1025, 4097])
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64, 256])
    parser.add_argument("--tokens", type=int, default=8 * 196, help="tokens per batch (batch = tokens // L)")
    parser.add_argument("--d-model", type=int, default=192)
    parser.add_argument("--headdim", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwdbwd"], choices=["fwd", "fwdbwd"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per case on CPU")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    H, P, N = 2 * args.d_model // args.headdim, args.headdim, args.d_state
    stream = args.out.open("a") if args.out else None
    emit({**env_header(), "bench": "reference", "device": args.device if args.device == "cpu" else
          torch.cuda.get_device_name(args.device), "threads": torch.get_num_threads(), "d_model": args.d_model,
          "H": H, "P": P, "N": N, "dtype": args.dtype, "tokens": args.tokens}, stream)
    for L in args.lengths:
        batch = max(1, args.tokens // L)
        inputs = make_inputs(batch, L, H, P, 1, N, getattr(torch, args.dtype), device=args.device)
        kw, leaves = inputs["kw"], inputs["leaves"]
        cases = {f"Q{q}": (q, lambda q=q: quasiseparable_mix_reference(**kw, chunk_size=q)) for q in args.chunks}
        cases["dispatch"] = (reference_chunk(L, N, 256, torch.device(args.device)),
                             lambda: quasiseparable_mix(**kw, chunk_size=256, backend="reference"))
        for mode in args.modes:
            for case, (q, fn) in cases.items():
                stats = run_case(case, fn, leaves, mode, cpu_reps=args.reps if args.device == "cpu" else 0)
                emit({"kind": "case", "L": L, "batch": batch, "mode": mode, "case": case, "Q": min(q, L), **stats,
                      "tokens_s": round(batch * L / stats["ms"] * 1e3)}, stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
