"""torchrun with 2 CPU processes (gloo) against 1 process at the same global batch.

With no random augmentation and one update per epoch over the whole train split, data order
cannot matter: DDP's averaged gradient equals the single process's, so both runs must end with
the same weights and metrics. The 15 val images shard as 8 + 7 (one padded duplicate), so the
DDP scores also check that the padding is left out.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hydra_vision.cli import validate
from hydra_vision.data.synthetic import write_image_folder

from ._helpers import TINY_MODEL, TRAIN_SCRIPT, read_csv, run_training, subprocess_env

DETERMINISTIC = [*TINY_MODEL, "-j", "0", "--epochs", "3", "--warmup-epochs", "1", "--opt", "adamw", "--lr-base", "1e-3",
                 "--lr-base-size", "12", "--lr-base-scale", "linear", "--no-aug", "--smoothing", "0.1",
                 "--model-ema", "--model-ema-decay", "0.9", "--log-interval", "1", "--seed", "7"]


def test_two_processes_train_like_one_at_the_same_global_batch(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", classes=3, images_per_class=4, size=36, splits=("train",))
    write_image_folder(tmp_path / "data", classes=3, images_per_class=5, size=36, splits=("val",), seed=1)
    single = run_training([str(data), *DETERMINISTIC, "-b", "12", "--output", str(tmp_path), "--experiment", "one"])
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(_torchrun(data, tmp_path, "two", "-b", "6"), env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]

    one, two = torch.load(tmp_path / "one" / "last.pth.tar", weights_only=True), \
        torch.load(tmp_path / "two" / "last.pth.tar", weights_only=True)
    assert one["args"]["lr"] == two["args"]["lr"] == pytest.approx(1e-3)
    assert len(two["rng"]) == 2 and two["rng"][0]["torch"].ne(two["rng"][1]["torch"]).any()
    for key in ("state_dict", "state_dict_ema"):
        for name, value in one[key].items():
            torch.testing.assert_close(two[key][name], value, rtol=1e-4, atol=1e-6, msg=f"{key}.{name}")
    rows_one, rows_two = read_csv(tmp_path / "one" / "summary.csv"), read_csv(tmp_path / "two" / "summary.csv")
    for a, b in zip(rows_one, rows_two, strict=True):
        for column in ("train_loss", "eval_loss", "eval_ema_loss", "lr"):
            assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-4), column
        for column in ("eval_top1", "eval_top5", "eval_ema_top1", "eval_ema_top5"):
            assert float(b[column]) == pytest.approx(float(a[column]), abs=1e-9), column

    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    for weights, prefix in (([], "eval_"), (["--use-ema"], "eval_ema_")):
        results = validate.validate(parser.parse_args(
            [str(data), "--checkpoint", str(tmp_path / "two" / "last.pth.tar"), "-b", "4", "-j", "0", *weights]))
        assert results["num_samples"] == 15
        assert results["top1"] == pytest.approx(float(rows_two[-1][prefix + "top1"]), abs=1e-9)
        assert results["loss"] == pytest.approx(float(rows_two[-1][prefix + "loss"]), rel=1e-5)


def _torchrun(data: Path, output: Path, experiment: str, *extra: str) -> list[str]:
    """train_imagenet.py under torchrun, 2 processes, the deterministic options, batch 2 per process."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(TRAIN_SCRIPT),
            str(data), *DETERMINISTIC, "-b", "2", "--output", str(output), "--experiment", experiment, *extra]


def test_two_processes_stopped_mid_epoch_resume_like_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGTERM to torchrun during epoch 1: both processes stop after the same update, rank 0 writes
    interrupted.pth.tar with both ranks' RNG states, and the resumed run ends like one never stopped."""
    data = write_image_folder(tmp_path / "data", classes=3, images_per_class=8, size=36, seed=2)
    whole = subprocess.run(_torchrun(data, tmp_path, "whole"), env=subprocess_env(), capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    child = subprocess.Popen(_torchrun(data, tmp_path, "stopped"), env=subprocess_env(), stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
    log = []
    for line in child.stderr:
        log.append(line)
        if line.startswith("train 1 [1/6]"):  # 24 images, 2 per process and batch: 6 updates per epoch
            child.send_signal(signal.SIGTERM)
            break
    log.extend(child.stderr)
    assert child.wait(120) != 0, "".join(log[-20:])
    run = tmp_path / "stopped"
    snapshot = torch.load(run / "interrupted.pth.tar", weights_only=True)
    assert snapshot["epoch"] == 1 and len(snapshot["rng"]) == len(snapshot["rng_epoch_start"]) == 2, "".join(log[-20:])

    resumed = subprocess.run(_torchrun(data, tmp_path, "stopped", "--resume", str(run / "interrupted.pth.tar")),
                             env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = snapshot["progress"]["batches"]
    assert f"train 1 [{done}/6]" not in resumed.stderr and f"train 1 [{done + 1}/6]" in resumed.stderr
    assert (run / "summary.csv").read_text() == (tmp_path / "whole" / "summary.csv").read_text()
    one, two = (torch.load(path / "last.pth.tar", weights_only=True) for path in (tmp_path / "whole", run))
    for key in ("state_dict", "state_dict_ema"):
        assert all(torch.equal(one[key][name], two[key][name]) for name in one[key]), key


def test_two_processes_reduce_the_batch_norm_stats_of_the_ema_too(tmp_path: Path) -> None:
    """With --dist-bn reduce each process's EMA copy gets the averaged BatchNorm statistics, so the
    EMA scores of the 2-process run equal a single-process validation of the saved EMA weights."""
    data = write_image_folder(tmp_path / "data", classes=3, images_per_class=8, size=36, seed=3)
    options = ["--model", "resnet10t", "--img-size", "32", "--model-ema", "--model-ema-decay", "0.5", "--epochs", "1",
               "--model-ema-warmup", "--model-kwargs"]  # (empty: no hydra kwargs)
    result = subprocess.run(_torchrun(data, tmp_path, "bn", *options), env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = read_csv(tmp_path / "bn" / "summary.csv")[-1]
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    scores = validate.validate(parser.parse_args([str(data), "--checkpoint", str(tmp_path / "bn" / "last.pth.tar"),
                                                  "--use-ema", "-b", "4", "-j", "0"]))
    assert scores["loss"] == pytest.approx(float(row["eval_ema_loss"]), rel=1e-5)
