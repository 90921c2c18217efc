"""The mixer comparison table (docs/mixers.md) from the runs of benchmarks/run_mixer_table.sh.

One row per configs/mixers/<mixer>.yaml, in the registry's order: parameters (10 classes, counted
on the meta device), epochs run of those planned, top-1 of the last and of the best epoch and the
best epoch's top-5 (summary.csv), the training step's img/s with the GPU to itself
(benchmarks/train_throughput.py JSON lines) and the median logged img/s inside the run (steps.csv;
the runs share the GPU and the loader's CPUs, so this one is only indicative). Markdown on stdout
(and --md), CSV with --csv.

    python benchmarks/mixer_table.py --runs DIR [--throughput FILE] [--model NAME] [--md FILE] [--csv FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import timm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import (Job, markdown, median_rate, read_args, read_jobs, read_rows,  # noqa: E402
                         read_throughput, run_status, write_table)

import hydra_vision  # noqa: E402,F401  (registers hydra_vit_*)
from hydra_vision.layers.mixers import MIXERS  # noqa: E402
from hydra_vision.training.config import parse_args  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("mixer", "params_m", "epochs", "top1_last", "top1_best", "top5_best", "img_s_alone", "img_s_in_run",
           "status")


def row(mixer: str, runs: Path, alone: dict[str, float], jobs: dict[str, Job], model_name: str | None) -> dict:
    """The table row of one mixer (empty cells for what its run did not produce)."""
    options = ["--model", model_name] if model_name else []
    config = parse_args(["-c", str(REPO / "configs" / "mixers" / f"{mixer}.yaml"), "--data-dir", "unused", *options])
    model = timm.create_model(config.model, num_classes=10, device="meta", **config.model_kwargs)
    run = runs / mixer
    planned = read_args(run).get("epochs", config.epochs)
    epochs = read_rows(run / "summary.csv")
    best = max(epochs, key=lambda r: r["eval_top1"]) if epochs else {}
    return {
        "mixer": mixer,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "epochs": f"{len(epochs)}/{planned}",
        "top1_last": epochs[-1]["eval_top1"] if epochs else None,
        "top1_best": best.get("eval_top1"),
        "top5_best": best.get("eval_top5"),
        "img_s_alone": alone.get(mixer),
        "img_s_in_run": median_rate(read_rows(run / "steps.csv")),
        "status": run_status(jobs.get(mixer), len(epochs), planned, f"{mixer}.log"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="the --output folder of the runs (one per mixer)")
    parser.add_argument("--throughput", type=Path, default=None, help="train_throughput.py --out file")
    parser.add_argument("--model", default=None, help="the model the runs used instead of the configs' (params)")
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    alone = read_throughput(args.throughput)
    jobs = read_jobs(args.runs)
    mixers = [m for m in MIXERS if (REPO / "configs" / "mixers" / f"{m}.yaml").exists()]
    rows = [row(m, args.runs, alone, jobs, args.model) for m in mixers]
    write_table(markdown(rows, COLUMNS), args.md, rows, COLUMNS, args.csv)


if __name__ == "__main__":
    main()
