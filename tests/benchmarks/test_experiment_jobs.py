"""configs/experiments (issue 7: one YAML per experiment) and benchmarks/experiment_jobs.py."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from hydra_vision.training.config import parse_args

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import experiment_jobs  # noqa: E402

NAMES = experiment_jobs.experiment_names()
FOLDERS = {"imagewoof": "imagewoof", "cifar10": "cifar10"}


def test_the_planned_experiments_exist() -> None:
    assert set(NAMES) == {"woof-headline", "woof-small", "woof-ablations", "woof-wallclock", "woof-fp16",
                          "woof-droppath", "woof-100", "woof-small-100", "woof-small-lr", "woof-small-100-lr", "cifar",
                          "cifar-eager", "cifar-small"}
    assert experiment_jobs.load_experiment("woof-headline")["seeds"] == [0, 1, 2]


@pytest.mark.parametrize("name", NAMES)
def test_every_job_is_a_valid_training_command_on_its_dataset(name: str) -> None:
    spec = experiment_jobs.load_experiment(name)
    for job in experiment_jobs.job_specs([name], wall_epochs=7):
        run, command = job.split("=", 1)
        config, *options = shlex.split(command)
        assert config.startswith(f"configs/{FOLDERS[spec['dataset']]}/")
        args = parse_args(["-c", str(ROOT / config), "--data-dir", "unused", *options])
        assert f"-s{args.seed}" in run and "{" not in job
        for part in run.rsplit("-s", 1)[0].split("_"):  # names that say their schedule or learning rate hold it
            if re.fullmatch(r"ep\d+", part):
                assert args.epochs == int(part[2:])
            if re.fullmatch(r"lr[\d.e-]+", part):
                assert args.lr == float(part[2:])


@pytest.mark.parametrize("name", NAMES)
def test_pairs_get_the_same_options(name: str) -> None:
    """hydra_vit_X... and deit_X... runs of one experiment differ only in their config."""
    runs = {run["name"]: run for run in experiment_jobs.load_experiment(name)["runs"]}
    for run_name, run in runs.items():
        partner = runs.get(run_name.replace("hydra_vit_", "deit_"))
        if run_name.startswith("hydra_vit_") and partner is not None:
            assert run.get("options") == partner.get("options"), run_name


def test_job_specs_expand_seeds_and_options_in_order() -> None:
    jobs = experiment_jobs.job_specs(["woof-100"], seeds=[3, 4])
    graphs = "--torchcompile --torchcompile-mode reduce-overhead"
    assert jobs == [f"hydra_vit_tiny_ep100-s3=configs/imagewoof/hydra_vit_tiny.yaml --seed 3 --epochs 100 {graphs}",
                    f"deit_tiny_ep100-s3=configs/imagewoof/deit_tiny.yaml --seed 3 --epochs 100 {graphs}",
                    f"hydra_vit_tiny_ep100-s4=configs/imagewoof/hydra_vit_tiny.yaml --seed 4 --epochs 100 {graphs}",
                    f"deit_tiny_ep100-s4=configs/imagewoof/deit_tiny.yaml --seed 4 --epochs 100 {graphs}"]
    assert experiment_jobs.job_specs(["woof-small"]) == [
        "hydra_vit_small-s0=configs/imagewoof/hydra_vit_small.yaml --seed 0",
        "deit_small-s0=configs/imagewoof/deit_small.yaml --seed 0"]


def test_wall_epochs_fill_the_placeholder_and_are_required() -> None:
    assert experiment_jobs.job_specs(["woof-wallclock"], wall_epochs=46) == [
        "deit_tiny_ep46-s0=configs/imagewoof/deit_tiny.yaml --seed 0 --epochs 46"]
    with pytest.raises(ValueError, match="needs --wall-epochs"):
        experiment_jobs.job_specs(["woof-wallclock"])
    assert experiment_jobs.main(["woof-headline", "woof-wallclock", "--uses-wall-epochs"]) == 0
    assert experiment_jobs.main(["woof-headline", "--uses-wall-epochs"]) == 1


def test_bad_requests_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert experiment_jobs.main(["woof-100", "cifar", "--dataset"]) == 2
    assert "one dataset per call" in capsys.readouterr().err
    assert experiment_jobs.main(["woof-1000"]) == 2
    assert "unknown experiment 'woof-1000'" in capsys.readouterr().err
    assert experiment_jobs.main(["cifar", "cifar-small", "--dataset"]) == 0
    assert capsys.readouterr().out.strip() == "cifar10"


@pytest.mark.parametrize("text, problem", [
    ("dataset: imagenet\nseeds: [0]\nruns: [{name: a, config: imagewoof/deit_tiny.yaml}]", "dataset must be"),
    ("dataset: cifar10\nruns: [{name: a, config: cifar10/deit_tiny.yaml}]", "seeds must be"),
    ("dataset: cifar10\nseeds: [0]\nruns: [{name: a, config: cifar10/deit_tiny.yaml}, "
     "{name: a, config: cifar10/deit_tiny.yaml}]", "unique names"),
    ("dataset: cifar10\nseeds: [0]\nruns: [{name: a, config: cifar10/missing.yaml}]", "no config"),
])
def test_malformed_experiment_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                problem: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.setattr(experiment_jobs, "EXPERIMENTS", tmp_path)
    with pytest.raises(ValueError, match=problem):
        experiment_jobs.load_experiment("bad")


def test_docs_name_every_experiment() -> None:
    docs = (ROOT / "docs" / "experiments.md").read_text()
    assert all(f"`configs/experiments/{name}.yaml`" in docs for name in NAMES)
