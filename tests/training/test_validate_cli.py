"""`hydra-vision validate`: a checkpoint's model or EMA weights score what the trainer measured."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from hydra_vision.cli import validate

from ._helpers import read_csv


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("use_ema, prefix", [(False, "eval_"), (True, "eval_ema_")], ids=["model", "ema"])
def test_validate_reproduces_the_trainer_eval(trained_run: Path, image_folder: Path, tmp_path: Path,
                                              use_ema: bool, prefix: str) -> None:
    best = trained_run / "model_best.pth.tar"
    epoch = torch.load(best, weights_only=True)["epoch"]
    row = read_csv(trained_run / "summary.csv")[epoch]
    results_file = tmp_path / "results.json"
    argv = [str(image_folder), "--checkpoint", str(best), "-b", "4", "-j", "0", "--results-file", str(results_file)]
    assert validate.run(_parse(*argv, *(["--use-ema"] if use_ema else []))) == 0
    results = json.loads(results_file.read_text())
    assert results["model"] == "hydra_vit_tiny" and results["weights"] == ("ema" if use_ema else "model")
    assert results["num_samples"] == 15 and results["input_size"] == [3, 32, 32]
    assert results["top1"] == pytest.approx(float(row[prefix + "top1"]), abs=1e-9)
    assert results["top5"] == pytest.approx(float(row[prefix + "top5"]), abs=1e-9)
    assert results["loss"] == pytest.approx(float(row[prefix + "loss"]), rel=1e-5)
    assert results["samples_per_s"] > 0


def test_validate_safetensors_with_explicit_model(trained_run: Path, image_folder: Path) -> None:
    row = read_csv(trained_run / "summary.csv")
    results = validate.validate(_parse(
        str(image_folder), "--checkpoint", str(trained_run / "model_best_ema.safetensors"), "--model",
        "hydra_vit_tiny", "--model-kwargs", "depth=2", "img_size=32", "--num-classes", "3", "--img-size", "32",
        "-j", "0"))
    assert results["top1"] in {float(r["eval_ema_top1"]) for r in row}


def test_validate_bad_input(trained_run: Path, image_folder: Path, tmp_path: Path) -> None:
    assert validate.run(_parse(str(tmp_path / "nowhere"), "--checkpoint", str(trained_run / "last.pth.tar"))) == 2
    with pytest.raises(ValueError, match="not 'deit_tiny_patch16_224'"):
        validate.validate(_parse(str(image_folder), "--checkpoint", str(trained_run / "last.pth.tar"),
                                 "--model", "deit_tiny_patch16_224", "--model-kwargs", "img_size=32", "-j", "0"))
    with pytest.raises(ValueError, match="does not name its model"):
        validate.validate(_parse(str(image_folder), "--checkpoint", str(trained_run / "model_best.safetensors")))
