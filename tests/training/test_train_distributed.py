"""torchrun with 2 CPU processes (gloo): DDP training runs and its sharded evaluation is exact."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hydra_vision.cli import validate

from ._helpers import TINY_MODEL, TRAIN_SCRIPT, read_csv, subprocess_env


def test_two_process_run_and_exact_sharded_eval(image_folder: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(TRAIN_SCRIPT), str(image_folder), *TINY_MODEL, "-b", "2", "-j", "0", "--epochs", "1",
               "--opt", "adamw", "--lr", "1e-3", "--model-ema", "--model-ema-decay", "0.9", "--aug-repeats", "3",
               "--log-interval", "1", "--output", str(tmp_path), "--experiment", "ddp"]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "ddp"
    checkpoint = torch.load(run / "last.pth.tar", weights_only=True)
    assert len(checkpoint["rng"]) == 2 and checkpoint["rng"][0]["torch"].ne(checkpoint["rng"][1]["torch"]).any()
    # 15 images, repeated augmentation x3 over 2 ranks: ceil(15 / 2) = 8 per rank -> 4 updates of 2
    assert [int(r["step"]) for r in read_csv(run / "steps.csv")] == [1, 2, 3, 4]

    # 15 val images shard as 8 + 7 (one padded duplicate): the scores must be those of one process
    row = read_csv(run / "summary.csv")[0]
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    for weights, prefix in (([], "eval_"), (["--use-ema"], "eval_ema_")):
        results = validate.validate(parser.parse_args(
            [str(image_folder), "--checkpoint", str(run / "last.pth.tar"), "-b", "5", "-j", "0", *weights]))
        assert results["top1"] == pytest.approx(float(row[prefix + "top1"]), abs=1e-9)
        assert results["top5"] == pytest.approx(float(row[prefix + "top5"]), abs=1e-9)
        assert results["loss"] == pytest.approx(float(row[prefix + "loss"]), rel=1e-5)
