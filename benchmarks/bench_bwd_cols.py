"""The mix backward's column kernel, fused vs split ($HYDRA_BWD_COLS): the triton mix forward+backward per variant.

Inputs as in bench_mixer.py (bf16 views into one projection; d_model 768: H = 24 heads of 64, N = 64, G = 1).
Per shape the variants run in one process, each autotuned by its first call; before timing, every
input gradient of the split variant is checked against the fused one (gate, relative max difference).

    python benchmarks/bench_bwd_cols.py [--shapes 128x197 6x4097] [--chunk-size 256] [--out FILE] [--profile]

One header line, then one gate line per shape and one JSON line per (shape, variant): median and
20/80% quantiles (ms) of forward+backward (`timing.time_ms`: triton.testing.do_bench), peak GiB.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mixer import case_fn, make_inputs, profile, run_case  # noqa: E402
from timing import emit, env_header  # noqa: E402

from hydra_vision.kernels.quasiseparable.triton_config import BWD_COLS_ENV  # noqa: E402

VARIANTS = ("fused", "split")


def gradients(kw: dict, leaves: list[torch.Tensor], grad: torch.Tensor, chunk_size: int | None) -> list[torch.Tensor]:
    """The leaves' gradients of <mix(kw), grad> under the current variant, in fp32."""
    y = case_fn("triton", kw, chunk_size)()
    return [g.float() for g in torch.autograd.grad(y, leaves, grad)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["128x197", "6x4097"], help="BATCHxL")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--headdim", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--ngroups", type=int, default=1)
    parser.add_argument("--chunk-size", type=lambda v: None if v == "auto" else int(v), default=256,
                        help="chunk length, or 'auto': timed per shape (chunk_size=None)")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--profile", action="store_true",
                        help="also print a profiler table of the CUDA kernels per (shape, variant); both split "
                             "launches appear as chunk_bwd_cols_kernel")
    args = parser.parse_args(argv)
    H, P, N, G = 2 * args.d_model // args.headdim, args.headdim, args.d_state, args.ngroups
    stream = args.out.open("a") if args.out else None
    emit({**env_header(), "bench": "bwd_cols", "d_model": args.d_model, "H": H, "P": P, "N": N, "G": G,
          "dtype": "bfloat16", "chunk_size": args.chunk_size}, stream)
    for shape in args.shapes:
        batch, L = (int(v) for v in shape.split("x"))
        inputs = make_inputs(batch, L, H, P, G, N, torch.bfloat16)
        kw, leaves = inputs["kw"], inputs["leaves"]
        record = {"name": f"B{batch}_L{L}_D{args.d_model}", "batch": batch, "L": L}
        grad = torch.randn_like(kw["x"])
        grads = {}
        for variant in args.variants:
            os.environ[BWD_COLS_ENV] = variant
            grads[variant] = gradients(kw, leaves, grad, args.chunk_size)
        ref = grads[args.variants[0]]
        errors = {v: max(((a - r).abs().max() / r.abs().max().clamp_min(1e-30)).item() for a, r in zip(g, ref))
                  for v, g in grads.items()}
        emit({"kind": "gate", **record, "rel_err_vs_" + args.variants[0]: errors,
              "passed": all(e < 3e-2 for e in errors.values())}, stream)
        for variant in args.variants:
            os.environ[BWD_COLS_ENV] = variant
            stats = run_case("triton", case_fn("triton", kw, args.chunk_size), leaves, "fwdbwd")
            emit({"kind": "case", **record, "mode": "fwdbwd", "variant": variant, **stats}, stream)
            if args.profile:
                profile(kw, leaves, args.chunk_size, f"{record['name']} {variant}")
        del inputs, kw, leaves, grads
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
