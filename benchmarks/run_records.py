"""Reading what benchmarks/run_concurrent.sh leaves in a runs folder (RUNS).

RUNS/NAME/ is one train_imagenet.py run (args.yaml, summary.csv: one row per finished epoch,
steps.csv: one row per log interval), RUNS/jobs.tsv has one line per call that ran NAME (name,
exit code or '-' when the deadline left no time to start, wall seconds), RUNS/throughput.jsonl the
training step alone per config (benchmarks/train_throughput.py). Missing files read as empty.
"""
from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Job", "read_rows", "read_args", "read_jobs", "read_throughput", "run_status", "median_rate",
           "markdown", "write_table"]

STOPPED = (124, 137, 143)  # timeout's SIGTERM / SIGKILL, or the trainer's own SIGTERM exit


@dataclass
class Job:
    """A run's record over the calls that ran it: the last exit code (None: never started), total wall s."""

    exit: int | None = None
    wall_s: float = 0.0


def read_rows(path: Path) -> list[dict[str, float]]:
    """Rows of a numeric CSV file with a header (summary.csv, steps.csv); [] when missing."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def read_args(run: Path) -> dict:
    """The resolved options of a run (args.yaml); {} when missing."""
    path = run / "args.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def read_jobs(runs: Path) -> dict[str, Job]:
    """RUNS/jobs.tsv by run name: the last call's exit code and the wall time of all calls."""
    path = runs / "jobs.tsv"
    jobs: dict[str, Job] = {}
    if not path.exists():
        return jobs
    with path.open(newline="") as f:
        for line in csv.DictReader(f, delimiter="\t"):
            job = jobs.setdefault(line["name"], Job())
            job.exit = None if line["exit"] == "-" else int(line["exit"])
            job.wall_s += float(line["wall_s"])
    return jobs


def read_throughput(path: Path | None) -> dict[str, float]:
    """config stem -> images/s of the training step alone (train_throughput.py JSON lines)."""
    if path is None or not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["config"]: r["images_per_s"] for r in records if r.get("kind") == "train_step" and "images_per_s" in r}


def run_status(job: Job | None, finished: int, planned: int | None, log_name: str) -> str:
    """'ok', 'stopped at deadline', 'not started (deadline)', 'not run' or 'failed (exit N, see LOG)'."""
    if job is None:
        return "not run"
    if job.exit is None:
        return "not started (deadline)"
    if job.exit == 0 and (planned is None or finished == planned):
        return "ok"
    if job.exit in STOPPED:
        return "stopped at deadline"
    return f"failed (exit {job.exit}, see {log_name})"


def median_rate(steps: list[dict[str, float]]) -> float | None:
    """Median logged images/s of a run without its first window (start-up)."""
    rates = [r["samples_per_s"] for r in steps[1:]]
    return round(statistics.median(rates), 1) if rates else None


def markdown(rows: list[dict], columns: tuple[str, ...]) -> str:
    """A markdown table of `rows` (dicts) with `columns`; floats with 2 decimals, None empty."""
    def cell(value) -> str:
        return "" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_table(table: str, md: Path | None, rows: list[dict], columns: tuple[str, ...], csv_path: Path | None) -> None:
    """Print a markdown `table` and write it to `md`; write `rows` with `columns` to `csv_path`."""
    print(table)
    if md:
        md.write_text(table + "\n")
    if csv_path:
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
