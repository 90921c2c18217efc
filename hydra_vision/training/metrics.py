"""A run's records: `summary.csv` (one row per epoch), `steps.csv` (one row per log interval)
and `curves.png` (loss, learning rate, top-1 of the model and its EMA).

A resumed run first drops the rows it will write again: summary rows from its first epoch on
(timm's `trim_summary`), step rows after the update it resumes from.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from timm.utils import trim_summary, update_summary

__all__ = ["RunRecords", "plot_curves"]


class RunRecords:
    """Appends to `summary.csv` and `steps.csv` in a run folder."""

    def __init__(self, run_dir: str | Path, log_wandb: bool = False) -> None:
        self.summary = Path(run_dir) / "summary.csv"
        self.steps = Path(run_dir) / "steps.csv"
        self.log_wandb = log_wandb

    def trim(self, start_epoch: int, done_updates: int) -> None:
        """Forget the summary rows of epochs >= `start_epoch` and the step rows after update
        `done_updates` (a resumed run writes them again)."""
        trim_summary(str(self.summary), start_epoch)
        if not self.steps.exists():
            return
        with self.steps.open(newline="") as f:
            rows = list(csv.reader(f))
        keep = [row for row in rows[1:] if row and int(row[1]) <= done_updates]
        if len(keep) < len(rows) - 1:
            with self.steps.open("w", newline="") as f:
                csv.writer(f).writerows(rows[:1] + keep if keep else [])

    def add_epoch(self, epoch: int, train: dict[str, float], evaluation: dict[str, float], lr: float) -> None:
        """One summary row: epoch, train_*, eval_* (model and `ema_*`), lr."""
        update_summary(epoch, train, evaluation, filename=str(self.summary), lr=lr, log_wandb=self.log_wandb)

    def add_step(self, epoch: int, step: int, loss: float, lr: float, samples_per_s: float) -> None:
        """One steps.csv row (optimizer step count, mean train loss since the last row)."""
        new = not self.steps.exists() or self.steps.stat().st_size == 0
        with self.steps.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "step", "loss", "lr", "samples_per_s"])
            writer.writerow([epoch, step, f"{loss:.6g}", f"{lr:.6g}", f"{samples_per_s:.1f}"])


def _columns(path: Path) -> dict[str, list[float]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def plot_curves(summary_csv: str | Path, out_png: str | Path) -> None:
    """Draw loss, learning rate and top-1 (model and EMA) per epoch from a summary.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _columns(Path(summary_csv))
    if "epoch" not in data:
        return
    epochs = data["epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [
        ("loss", [("train_loss", "train"), ("eval_loss", "eval"), ("eval_ema_loss", "eval (EMA)")]),
        ("learning rate", [("lr", "lr")]),
        ("top-1 (%)", [("eval_top1", "model"), ("eval_ema_top1", "EMA")]),
    ]
    for ax, (title, series) in zip(axes, panels):
        for key, label in series:
            if key in data:
                ax.plot(epochs, data[key], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    Path(out_png).write_bytes(buffer.getvalue())
