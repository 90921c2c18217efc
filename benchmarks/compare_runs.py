"""Compare two training runs (e.g. 1 GPU vs 2 GPUs at the same global batch): loss curves and metrics.

Reads each run folder's steps.csv and summary.csv. Prints one JSON line per epoch (mean train
loss of the logged windows, eval top-1 of model and EMA, both runs), one summary line (mean
absolute difference of the per-update losses, the first/last-epoch train loss, throughput), and
draws both loss curves into one PNG.

    python benchmarks/compare_runs.py RUN_A RUN_B [--labels 1gpu 2gpu] [--png FILE]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import emit  # noqa: E402


def _rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2, type=Path)
    parser.add_argument("--labels", nargs=2, default=["a", "b"])
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    steps = [_rows(run / "steps.csv") for run in args.runs]
    summaries = [_rows(run / "summary.csv") for run in args.runs]
    a, b = args.labels
    for row_a, row_b in zip(*summaries):
        record = {"kind": "epoch", "epoch": int(row_a["epoch"])}
        for label, row in ((a, row_a), (b, row_b)):
            record.update({f"{label}_train_loss": round(row["train_loss"], 4), f"{label}_top1": row["eval_top1"],
                           f"{label}_ema_top1": row.get("eval_ema_top1")})
        emit(record)
    by_step = [{int(r["step"]): r for r in run} for run in steps]
    common = sorted(set(by_step[0]) & set(by_step[1]))
    emit({"kind": "loss_curves", "labels": args.labels, "common_logged_updates": len(common),
          "mean_abs_loss_diff": round(statistics.fmean(abs(by_step[0][s]["loss"] - by_step[1][s]["loss"])
                                                       for s in common), 4),
          "mean_loss": [round(statistics.fmean(by_step[i][s]["loss"] for s in common), 4) for i in (0, 1)],
          "samples_per_s_median": [round(statistics.median(r["samples_per_s"] for r in run[1:]), 1) for run in steps],
          "final_top1": [s[-1]["eval_top1"] for s in summaries]})
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4))
        for label, run in zip(args.labels, steps):
            ax.plot([r["step"] for r in run], [r["loss"] for r in run], label=label, alpha=0.8)
        ax.set_xlabel("optimizer update")
        ax.set_ylabel("train loss (logged window mean)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)


if __name__ == "__main__":
    main()
