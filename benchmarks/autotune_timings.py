"""Every autotuned config's time, per kernel and tuning key, in one mixer forward+backward.

Triton's autotuner times each surviving config once per new key and keeps only the best; with
TRITON_PRINT_AUTOTUNING=1 it prints the winner, not the field. This script records the whole field:
it wraps `Autotuner.run`, runs one triton forward+backward of the mix per length (bench_mixer's
inputs, bf16), and prints one JSON line per (kernel, key, config) with the median ms, the rank and
whether the config won. Configs that fail to compile (out of resources) time as inf.

`--configs` adds candidate configs to named kernels for this process (`--replace`: only those), so a
field can be timed without editing the tree; every config costs a compile of a few seconds.

    python benchmarks/autotune_timings.py --lengths 1025 4097 16385 --chunk-size 64
    python benchmarks/autotune_timings.py --lengths 16385 --tokens 32800 \
        --configs '{"chunk_bwd_bc_kernel": [{"BLOCK": 64, "num_warps": 8, "num_stages": 1}]}'
    python benchmarks/autotune_timings.py --lengths 197 \
        --configs '{"chunk_bwd_pairs_kernel": [{"num_warps": 8, "num_stages": 1, "maxnreg": 128}]}'
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import torch
import triton
from triton.runtime.autotuner import Autotuner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mixer import AUTO, make_inputs, parse_chunk_size  # noqa: E402
from timing import emit, env_header  # noqa: E402

import hydra_vision.kernels  # noqa: E402
from hydra_vision.kernels import quasiseparable_mix  # noqa: E402
from hydra_vision.kernels.launcher import triton_kernel  # noqa: E402


def autotuners() -> dict[str, Autotuner]:
    """Every autotuned kernel of hydra_vision.kernels, by its function's name."""
    found = {}
    package = hydra_vision.kernels
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        for value in vars(importlib.import_module(info.name)).values():
            tuner = triton_kernel(value)
            if isinstance(tuner, Autotuner):
                found[tuner.base_fn.__name__] = tuner
    return found


def set_configs(spec: dict[str, list[dict]], replace: bool) -> None:
    """Add (or with `replace`, set) each named kernel's configs: {name: [{meta..., num_warps, num_stages,
    maxnreg (optional: ptxas's register cap a thread)}]}."""
    tuners = autotuners()
    options = ("num_warps", "num_stages", "maxnreg")
    for name, configs in spec.items():
        if name not in tuners:
            raise SystemExit(f"--configs: no autotuned kernel {name!r}; the kernels are {sorted(tuners)}")
        new = [triton.Config({k: v for k, v in c.items() if k not in options}, num_warps=c.get("num_warps", 4),
                             num_stages=c.get("num_stages", 3), maxnreg=c.get("maxnreg")) for c in configs]
        tuners[name].configs = new if replace else [*tuners[name].configs, *new]


def record_tuning(records: list[dict]) -> None:
    """Wrap Autotuner.run so that each new tuning (a new `configs_timings` dict) is appended to `records`."""
    original = Autotuner.run

    def run(self, *args, **kwargs):
        before = getattr(self, "configs_timings", None)
        out = original(self, *args, **kwargs)
        timings = getattr(self, "configs_timings", None)
        if timings is not None and timings is not before:
            named = dict(zip(self.arg_names, args), **kwargs)
            records.append({"kernel": self.base_fn.__name__, "key": {k: named.get(k) for k in self.keys},
                            "timings": timings, "best": self.best_config})
        return out

    Autotuner.run = run


def config_lines(record: dict, shape: dict) -> list[dict]:
    """One line per config of one tuning, fastest first."""
    def median(timing: list[float] | float) -> float:  # do_bench gives [median, q20, q80], or inf when it failed
        return float(timing[0] if isinstance(timing, list) else timing)

    ranked = sorted(record["timings"].items(), key=lambda kv: median(kv[1]))
    lines = []
    for rank, (config, timing) in enumerate(ranked):
        lines.append({"kind": "config", **shape, "kernel": record["kernel"], "key": record["key"],
                      "config": {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages,
                                 "maxnreg": config.maxnreg},
                      "ms": round(median(timing), 5), "rank": rank, "best": config is record["best"]})
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4097])
    parser.add_argument("--tokens", type=int, default=25_216)
    parser.add_argument("--chunk-size", type=parse_chunk_size, default=AUTO,
                        help="as bench_mixer.py's: an int, 'auto' (the models' rule) or 'tuned'")
    parser.add_argument("--heads", type=int, default=24)
    parser.add_argument("--headdim", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--configs", type=json.loads, default={},
                        help='configs to add, JSON: {"kernel name": [{"BLOCK": 64, "num_warps": 8}, ...]}')
    parser.add_argument("--replace", action="store_true", help="time only the --configs of the kernels they name")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("autotune_timings.py times Triton configs and needs a CUDA device")
    set_configs(args.configs, args.replace)
    out = open(args.out, "a") if args.out else None
    emit(env_header(), out)
    chunk = "tuned" if args.chunk_size is None else args.chunk_size
    records: list[dict] = []
    record_tuning(records)
    for L in args.lengths:
        batch = max(1, args.tokens // L)
        inputs = make_inputs(batch, L, args.heads, args.headdim, 1, args.d_state, torch.bfloat16)
        start = len(records)
        y = quasiseparable_mix(**inputs["kw"], chunk_size=args.chunk_size, backend="triton")
        y.float().square().sum().backward()
        torch.cuda.synchronize()
        shape = {"L": L, "batch": batch, "chunk_size": chunk}
        for record in records[start:]:
            for line in config_lines(record, shape):
                emit(line, out)
    if out:
        out.close()


if __name__ == "__main__":
    main()
