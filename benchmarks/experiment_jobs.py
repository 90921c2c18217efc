"""Issue 7's experiments as data: configs/experiments/EXPERIMENT.yaml -> run_concurrent.sh job specs.

An experiment file names its dataset (`imagewoof` or `cifar10`), its seeds, options for every run
(train_imagenet.py flags, optional) and its runs, each a name, a config under configs/ and options
of its own (optional). `{wall_epochs}` in a name or options is replaced by --wall-epochs.

    python benchmarks/experiment_jobs.py EXPERIMENT [...] [--seeds 0 1] [--wall-epochs N]
        one job per run and seed: NAME-sSEED=configs/CONFIG --seed SEED RUN_OPTIONS OPTIONS
    python benchmarks/experiment_jobs.py EXPERIMENT [...] --dataset   the experiments' one dataset
    python benchmarks/experiment_jobs.py --list                       name and first comment line of each
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "configs" / "experiments"
DATASETS = ("imagewoof", "cifar10")
WALL_EPOCHS = "{wall_epochs}"


def experiment_names() -> list[str]:
    """The experiments in configs/experiments, sorted."""
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))


def load_experiment(name: str) -> dict:
    """configs/experiments/NAME.yaml, checked: a known dataset, seeds, runs with unique names and configs."""
    path = EXPERIMENTS / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiment_names())}")
    spec = yaml.safe_load(path.read_text()) or {}
    if spec.get("dataset") not in DATASETS:
        raise ValueError(f"{path}: dataset must be one of {DATASETS}, got {spec.get('dataset')!r}")
    if not spec.get("seeds") or not all(isinstance(s, int) for s in spec["seeds"]):
        raise ValueError(f"{path}: seeds must be a non-empty list of integers")
    runs = spec.get("runs") or []
    names = [run.get("name") for run in runs]
    if not runs or None in names or len(set(names)) != len(names):
        raise ValueError(f"{path}: runs must be a non-empty list with unique names")
    for run in runs:
        if not (ROOT / "configs" / str(run.get("config"))).is_file():
            raise ValueError(f"{path}: run {run['name']}: no config configs/{run.get('config')}")
    return spec


def uses_wall_epochs(spec: dict) -> bool:
    """True when a run's name or options, or the experiment's options, hold {wall_epochs}."""
    texts = [spec.get("options", "")] + [run.get(key, "") for run in spec["runs"] for key in ("name", "options")]
    return any(WALL_EPOCHS in str(text) for text in texts)


def job_specs(names: list[str], seeds: list[int] | None = None, wall_epochs: int | None = None) -> list[str]:
    """run_concurrent.sh's "NAME-sSEED=CONFIG OPTIONS" for every run and seed of the experiments."""
    jobs = []
    for name in names:
        spec = load_experiment(name)
        if uses_wall_epochs(spec) and wall_epochs is None:
            raise ValueError(f"experiment {name} needs --wall-epochs (its runs hold {WALL_EPOCHS})")
        for seed in seeds or spec["seeds"]:
            for run in spec["runs"]:
                words = [f"{run['name']}-s{seed}=configs/{run['config']}", "--seed", str(seed),
                         run.get("options", ""), spec.get("options", "")]
                jobs.append(" ".join(w for w in words if w).replace(WALL_EPOCHS, str(wall_epochs)))
    return jobs


def dataset(names: list[str]) -> str:
    """The one dataset of the experiments (a device call extracts one)."""
    found = sorted({load_experiment(name)["dataset"] for name in names})
    if len(found) != 1:
        raise ValueError(f"one dataset per call: {' '.join(names)} use {' and '.join(found)}")
    return found[0]


def describe() -> list[str]:
    """'NAME  first comment line' per experiment."""
    lines = []
    for name in experiment_names():
        first = (EXPERIMENTS / f"{name}.yaml").read_text().splitlines()[0]
        lines.append(f"{name:16s}{first.lstrip('# ') if first.startswith('#') else ''}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*")
    parser.add_argument("--seeds", type=int, nargs="+", help="instead of each experiment's seeds")
    parser.add_argument("--wall-epochs", type=int, help="replaces {wall_epochs}")
    parser.add_argument("--dataset", action="store_true", help="print the experiments' dataset")
    parser.add_argument("--uses-wall-epochs", action="store_true",
                        help="exit 0 when a run of the experiments holds {wall_epochs}, else 1")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(describe()))
        return 0
    if not args.experiments:
        parser.error(f"name one or more experiments: {', '.join(experiment_names())}")
    try:
        if args.uses_wall_epochs:
            return 0 if any(uses_wall_epochs(load_experiment(n)) for n in args.experiments) else 1
        print(dataset(args.experiments) if args.dataset else
              "\n".join(job_specs(args.experiments, args.seeds, args.wall_epochs)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
