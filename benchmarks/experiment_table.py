"""Issue 7's results table, plot and CSV from the runs folders of benchmarks/run_experiments.sh.

A run folder NAME-sSEED belongs to experiment NAME (a folder without the suffix is its own
experiment). One table row per experiment: model (with its architecture kwargs), parameters and
GFLOPs per image (hydra_vision.cli.models.model_flops on the meta device at the run's image size and
class count), seeds, epochs finished of those planned, top-1 / top-5 of the model and of its EMA at
the last finished epoch, the best top-1 of each over the epochs, wall time of the run (jobs.tsv; the
runs share the GPU), the training step's img/s alone (throughput.jsonl of the runs folder, by config
name = experiment) and the median logged img/s inside the run. Several seeds: mean ± sample std.
The plot: EMA top-1 against epoch per experiment, the mean over seeds with their min-max band; the
time plot: the same against training time with the GPU to itself, epochs x images per epoch / the
experiment's img/s alone (--rate), the equal-wall-clock view. The CSV: one row per run. Folders of
copied summary.csv files alone give the accuracy columns only.

    python benchmarks/experiment_table.py --runs DIR [DIR ...] [--md FILE] [--csv FILE] [--png FILE]
        [--time-png FILE --epoch-images N --rate EXPERIMENT=IMG_S ...]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import timm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import (Job, markdown, median_rate, read_args, read_jobs, read_rows,  # noqa: E402
                         read_throughput, run_status, write_table)

import hydra_vision  # noqa: E402,F401  (registers hydra_vit_*)
from hydra_vision.cli.models import model_flops  # noqa: E402

COLUMNS = ("experiment", "model", "params (M)", "GFLOPs", "seeds", "epochs", "top-1", "top-5", "EMA top-1",
           "EMA top-5", "best top-1", "best EMA top-1", "wall (s)", "img/s alone", "img/s in run", "status")
CSV_COLUMNS = ("experiment", "run", "seed", "model", "params_m", "gflops", "epochs", "planned_epochs", "top1", "top5",
               "ema_top1", "ema_top5", "best_top1", "best_ema_top1", "wall_s", "img_s_alone", "img_s_in_run",
               "status")
# summary.csv column -> CSV column, at the last finished epoch and the best one
LAST = {"eval_top1": "top1", "eval_top5": "top5", "eval_ema_top1": "ema_top1", "eval_ema_top5": "ema_top5"}
BEST = {"eval_top1": "best_top1", "eval_ema_top1": "best_ema_top1"}
_SEED = re.compile(r"^(?P<experiment>.+)-s(?P<seed>\d+)$")


@dataclass
class Run:
    """One run folder's records."""

    experiment: str
    name: str
    path: Path
    args: dict
    epochs: list[dict[str, float]]
    job: Job | None
    alone: float | None
    rate: float | None


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run of the runs folders `roots` (a folder with summary.csv or args.yaml, or a jobs.tsv line:
    a run stopped in its first epoch or never started has no summary.csv), by experiment and name.

    Raises:
        FileNotFoundError: a runs folder is missing.
        ValueError: the same run name in two runs folders.
    """
    runs: dict[str, Run] = {}
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"runs folder not found: {root}")
        jobs, alone = read_jobs(root), read_throughput(root / "throughput.jsonl")
        names = {p.parent.name for pattern in ("*/summary.csv", "*/args.yaml") for p in root.glob(pattern)}
        for name in sorted(names | set(jobs)):
            if name in runs:
                raise ValueError(f"run {name!r} is in both {runs[name].path.parent} and {root}")
            path = root / name
            match = _SEED.match(name)
            experiment = match["experiment"] if match else name
            runs[name] = Run(experiment, name, path, read_args(path), read_rows(path / "summary.csv"), jobs.get(name),
                             alone.get(experiment), median_rate(read_rows(path / "steps.csv")))
    return sorted(runs.values(), key=lambda r: (r.experiment, r.name))


def check_group(runs: list[Run]) -> None:
    """Raise a ValueError when the runs of one experiment differ in the model or its input size."""
    keys = ("model", "model_kwargs", "gp", "img_size")
    variants = {tuple(str(run.args.get(k)) for k in keys) for run in runs if run.args}
    if len(variants) > 1:
        raise ValueError(f"the runs of {runs[0].experiment!r} differ in {'/'.join(keys)}: {sorted(variants)}")


def model_cost(args: dict) -> tuple[str | None, float | None, float | None]:
    """(model description, params in M, GFLOPs per image) from a run's resolved options (None: unknown)."""
    if "model" not in args:
        return None, None, None
    kwargs = dict(args.get("model_kwargs") or {})
    if args.get("gp"):
        kwargs["global_pool"] = args["gp"]
    model = timm.create_model(args["model"], num_classes=args.get("num_classes") or 10, device="meta", **kwargs)
    size = args.get("img_size") or kwargs.get("img_size") or model.patch_embed.img_size[0]
    described = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "img_size")
    params = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    return (f"{args['model']} ({described})" if described else args["model"], params,
            round(model_flops(model, (size, size)) / 1e9, 2))


def run_row(run: Run, model: str | None, params: float | None, gflops: float | None) -> dict:
    """The CSV row of one run."""
    planned = run.args.get("epochs")
    last = run.epochs[-1] if run.epochs else {}
    row = {"experiment": run.experiment, "run": run.name, "seed": run.args.get("seed"), "model": model,
           "params_m": params, "gflops": gflops, "epochs": len(run.epochs), "planned_epochs": planned,
           "wall_s": run.job.wall_s if run.job else None, "img_s_alone": run.alone, "img_s_in_run": run.rate,
           "status": run_status(run.job, len(run.epochs), planned, f"{run.name}.log")}
    row.update({column: last.get(key) for key, column in LAST.items()})
    row.update({column: max((e[key] for e in run.epochs if key in e), default=None) for key, column in BEST.items()})
    return row


def spread(values: list[float | None], digits: int = 2) -> str | None:
    """'mean' of one value, 'mean ± std' (sample std) of several; missing values (None) left out."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def experiment_row(rows: list[dict]) -> dict:
    """The table row of one experiment from its runs' CSV rows."""
    first = rows[0]
    finished = sorted({r["epochs"] for r in rows})
    planned = max((r["planned_epochs"] for r in rows if r["planned_epochs"] is not None), default=None)
    epochs = f"{finished[0]}-{finished[-1]}" if len(finished) > 1 else str(finished[0])
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    column = {"top-1": "top1", "top-5": "top5", "EMA top-1": "ema_top1", "EMA top-5": "ema_top5",
              "best top-1": "best_top1", "best EMA top-1": "best_ema_top1"}
    return {
        "experiment": first["experiment"], "model": first["model"], "params (M)": first["params_m"],
        "GFLOPs": first["gflops"], "seeds": len(rows),
        "epochs": f"{epochs}/{planned}" if planned is not None else epochs,
        **{title: spread([r[key] for r in rows]) for title, key in column.items()},
        "wall (s)": spread([r["wall_s"] for r in rows], 0),
        "img/s alone": first["img_s_alone"], "img/s in run": spread([r["img_s_in_run"] for r in rows], 0),
        "status": ", ".join(f"{n} {s}" for s, n in statuses.items()),
    }


def band(runs: list[Run], key: str = "eval_ema_top1") -> tuple[list[int], list[float], list[float], list[float]]:
    """(epochs, mean, min, max) of `key` over the runs that finished each epoch."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for row in run.epochs:
            if key in row:
                by_epoch.setdefault(int(row["epoch"]), []).append(row[key])
    epochs = sorted(by_epoch)
    return (epochs, [statistics.fmean(by_epoch[e]) for e in epochs], [min(by_epoch[e]) for e in epochs],
            [max(by_epoch[e]) for e in epochs])


def plot(groups: dict[str, list[Run]], out_png: Path, seconds_per_epoch: dict[str, float] | None = None) -> None:
    """EMA top-1 per experiment, mean over seeds with a min-max band, against epoch or, with
    seconds_per_epoch, against training time (experiments without a rate are left out)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for experiment, runs in groups.items():
        epochs, mean, low, high = band(runs)
        if not epochs or (seconds_per_epoch is not None and experiment not in seconds_per_epoch):
            continue
        scale = 1.0 if seconds_per_epoch is None else seconds_per_epoch[experiment]
        x = [(e + 1) * scale for e in epochs]
        (line,) = ax.plot(x, mean, label=f"{experiment} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch" if seconds_per_epoch is None else "training time with the GPU to itself (s)")
    ax.set_ylabel("EMA top-1 (%)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="runs folders (RUNS of run_concurrent.sh)")
    parser.add_argument("--md", type=Path, default=None, help="markdown table (also on stdout)")
    parser.add_argument("--csv", type=Path, default=None, help="one row per run")
    parser.add_argument("--png", type=Path, default=None, help="EMA top-1 against epoch")
    parser.add_argument("--time-png", type=Path, default=None, help="EMA top-1 against training time alone")
    parser.add_argument("--epoch-images", type=int, default=None, help="training images per epoch (time plot)")
    parser.add_argument("--rate", nargs="+", default=[], metavar="EXPERIMENT=IMG_S",
                        help="training img/s alone per experiment (time plot)")
    args = parser.parse_args(argv)
    if args.time_png and not (args.epoch_images and args.rate):
        parser.error("--time-png needs --epoch-images and --rate")
    runs = find_runs(args.runs)
    if not runs:
        raise ValueError(f"no run folder (NAME/summary.csv) in {', '.join(map(str, args.runs))}")
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.experiment, []).append(run)
    for group in groups.values():
        check_group(group)
    costs = {e: model_cost(next((r.args for r in group if r.args), {})) for e, group in groups.items()}
    rows = [run_row(run, *costs[run.experiment]) for run in runs]
    table = markdown([experiment_row([r for r in rows if r["experiment"] == e]) for e in groups], COLUMNS)
    table = ("Last finished epoch unless 'best'; several seeds: mean ± sample std. Wall time with the GPU shared "
             "by the call's runs.\n\n" + table)
    write_table(table, args.md, rows, CSV_COLUMNS, args.csv)
    if args.png:
        plot(groups, args.png)
    if args.time_png:
        rates = {name: float(value) for name, value in (r.split("=", 1) for r in args.rate)}
        plot(groups, args.time_png, {name: args.epoch_images / rate for name, rate in rates.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
