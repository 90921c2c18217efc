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
import csv
import json
import statistics
from pathlib import Path

import timm
import yaml

import hydra_vision  # noqa: F401  (registers hydra_vit_*)
from hydra_vision.layers.mixers import MIXERS
from hydra_vision.training.config import parse_args

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("mixer", "params_m", "epochs", "top1_last", "top1_best", "top5_best", "img_s_alone", "img_s_in_run",
           "status")


def _csv_rows(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _throughput(path: Path | None) -> dict[str, float]:
    """config stem -> images/s of the training step alone."""
    if path is None or not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["config"]: r["images_per_s"] for r in records if r.get("kind") == "train_step" and "images_per_s" in r}


def row(mixer: str, runs: Path, alone: dict[str, float], model_name: str | None) -> dict:
    """The table row of one mixer (empty cells for what its run did not produce)."""
    options = ["--model", model_name] if model_name else []
    config = parse_args(["-c", str(REPO / "configs" / "mixers" / f"{mixer}.yaml"), "--data-dir", "unused", *options])
    model = timm.create_model(config.model, num_classes=10, device="meta", **config.model_kwargs)
    run = runs / mixer
    planned = config.epochs
    if (run / "args.yaml").exists():
        planned = yaml.safe_load((run / "args.yaml").read_text()).get("epochs", planned)
    epochs = _csv_rows(run / "summary.csv")
    steps = _csv_rows(run / "steps.csv")
    exit_file = runs / f"{mixer}.exit"
    code = int(exit_file.read_text()) if exit_file.exists() else None
    if code is None:
        status = "not run"
    elif code == 0 and len(epochs) == planned:
        status = "ok"
    elif code in (124, 137, 143):
        status = "stopped at deadline"
    else:
        status = f"failed (exit {code}, see {mixer}.log)"
    best = max(epochs, key=lambda r: r["eval_top1"]) if epochs else {}
    return {
        "mixer": mixer,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "epochs": f"{len(epochs)}/{planned}",
        "top1_last": epochs[-1]["eval_top1"] if epochs else None,
        "top1_best": best.get("eval_top1"),
        "top5_best": best.get("eval_top5"),
        "img_s_alone": alone.get(mixer),
        "img_s_in_run": round(statistics.median(r["samples_per_s"] for r in steps[1:]), 1) if steps[1:] else None,
        "status": status,
    }


def markdown(rows: list[dict]) -> str:
    def cell(value) -> str:
        return "" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="the --output folder of the runs (one per mixer)")
    parser.add_argument("--throughput", type=Path, default=None, help="train_throughput.py --out file")
    parser.add_argument("--model", default=None, help="the model the runs used instead of the configs' (params)")
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    alone = _throughput(args.throughput)
    mixers = [m for m in MIXERS if (REPO / "configs" / "mixers" / f"{m}.yaml").exists()]
    rows = [row(m, args.runs, alone, args.model) for m in mixers]
    table = markdown(rows)
    print(table)
    if args.md:
        args.md.write_text(table + "\n")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
