"""Whole runs on CPU at tiny size: files written, exact resume after SIGTERM, bad input, unreadable images."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file
from timm.utils import ModelEmaV3

from hydra_vision.training import parse_args, train
from hydra_vision.training.model import create_training_model
from hydra_vision.training.optim import create_optimizer, create_scheduler
from hydra_vision.training.trainer import _checkpoint_state, _load_resume

from ._helpers import TINY_MODEL, TRAIN_SCRIPT, read_csv, run_training, subprocess_env, tiny_run_args

UPDATES_PER_EPOCH = 7  # 15 images, batch 2, last partial batch dropped


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_full_run_writes_expected_files(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {"args.yaml", "summary.csv", "steps.csv", "curves.png", "last.pth.tar", "model_best.pth.tar",
            "model_best.safetensors", "model_best_ema.safetensors"} <= names
    assert {f"checkpoint-{e}.pth.tar" for e in range(3)} <= names
    assert not any(n.endswith(".tmp") for n in names) and "interrupted.pth.tar" not in names
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = read_csv(trained_run / "summary.csv")
    assert [int(r["epoch"]) for r in summary] == [0, 1, 2]
    assert set(summary[0]) == {"epoch", "train_loss", "train_skipped_images", "eval_loss", "eval_top1", "eval_top5",
                               "eval_ema_loss", "eval_ema_top1", "eval_ema_top5", "lr"}
    assert all(float(r["train_skipped_images"]) == 0 for r in summary)
    steps = read_csv(trained_run / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, 3 * UPDATES_PER_EPOCH + 1))

    last = _load(trained_run / "last.pth.tar")
    assert last["epoch"] == 2 and last["step"] == 3 * UPDATES_PER_EPOCH and last["arch"] == "hydra_vit_tiny"
    assert last["class_names"] == ["class_000", "class_001", "class_002"] and len(last["rng"]) == 1
    assert last["args"]["num_classes"] == 3 and last["args"]["img_size"] == 32
    assert {"optimizer", "scheduler", "saver", "state_dict_ema"} <= set(last)
    assert any(not torch.equal(a, b) for a, b in zip(last["state_dict"].values(), last["state_dict_ema"].values()))

    best = _load(trained_run / "model_best.pth.tar")
    ema_top1 = [float(r["eval_ema_top1"]) for r in summary]
    assert best["epoch"] == ema_top1.index(max(ema_top1))  # EMA metric ranks checkpoints (timm), earliest tie
    for file, key in (("model_best.safetensors", "state_dict"), ("model_best_ema.safetensors", "state_dict_ema")):
        exported = load_file(trained_run / file)
        assert exported.keys() == best[key].keys()
        assert all(torch.equal(exported[k], best[key][k]) for k in exported)

    resolved = yaml.safe_load((trained_run / "args.yaml").read_text())
    assert resolved["lr"] == 1e-3 and resolved["amp"] is False
    assert resolved["model_kwargs"] == {"depth": 2, "img_size": 32}
    assert resolved == {k: v for k, v in last["args"].items() if k not in ("config", "data")}


def test_resume_after_sigterm_ends_like_the_uninterrupted_run(trained_run: Path, image_folder: Path,
                                                              tmp_path: Path) -> None:
    args = tiny_run_args(image_folder, tmp_path, "resumed", "-j", "1")
    _stop_after_first_update_of_epoch_1(args)
    run = tmp_path / "resumed"
    snapshot = _load(run / "interrupted.pth.tar")
    assert snapshot["interrupted"] and snapshot["epoch"] == 1
    assert _load(run / "last.pth.tar")["epoch"] == 0
    assert [int(r["epoch"]) for r in read_csv(run / "summary.csv")] == [0]

    result = run_training([*args, "--resume", str(run / "last.pth.tar")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "summary.csv").read_text() == (trained_run / "summary.csv").read_text()
    columns = ("epoch", "step", "loss", "lr")
    assert [[r[c] for c in columns] for r in read_csv(run / "steps.csv")] == \
        [[r[c] for c in columns] for r in read_csv(trained_run / "steps.csv")]
    resumed, uninterrupted = _load(run / "last.pth.tar"), _load(trained_run / "last.pth.tar")
    for key in ("state_dict", "state_dict_ema"):
        assert all(torch.equal(resumed[key][k], uninterrupted[key][k]) for k in uninterrupted[key])
    assert resumed["saver"] == uninterrupted["saver"]


def _stop_after_first_update_of_epoch_1(args: list[str]) -> None:
    """Run train_imagenet.py with `args` and SIGTERM it after epoch 1's first update."""
    child = subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), *args], env=subprocess_env(),
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log = []
    for line in child.stderr:
        log.append(line)
        if line.startswith(f"train 1 [1/{UPDATES_PER_EPOCH}]"):
            child.send_signal(signal.SIGTERM)
            break
    log.extend(child.stderr)
    assert child.wait(120) == 128 + signal.SIGTERM, "".join(log[-20:])


@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_mid_epoch_continues_after_the_trained_batches(image_folder: Path, tmp_path: Path,
                                                              workers: str) -> None:
    """In the main process (-j 0) or with loader processes (-j 2: augmentation seeded per sample position)
    the run resumed from interrupted.pth.tar ends bit-identical to an uninterrupted one: the same batches,
    augmentations, updates, CSV rows and weights."""
    whole = run_training(tiny_run_args(image_folder, tmp_path, "whole", "-j", workers))
    assert whole.returncode == 0, whole.stderr[-3000:]
    args = tiny_run_args(image_folder, tmp_path, "stopped", "-j", workers)
    _stop_after_first_update_of_epoch_1(args)
    run = tmp_path / "stopped"
    snapshot = _load(run / "interrupted.pth.tar")
    done = snapshot["progress"]["batches"]  # 1, or more when the signal lands during the next update
    assert snapshot["epoch"] == 1 and 1 <= done < UPDATES_PER_EPOCH and snapshot["step"] == UPDATES_PER_EPOCH + done
    assert len(snapshot["rng_epoch_start"]) == 1

    result = run_training([*args, "--resume", str(run / "interrupted.pth.tar")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (run / "interrupted.pth.tar").exists()
    assert (run / "summary.csv").read_text() == (tmp_path / "whole" / "summary.csv").read_text()
    columns = ("epoch", "step", "loss", "lr")
    assert [[r[c] for c in columns] for r in read_csv(run / "steps.csv")] == \
        [[r[c] for c in columns] for r in read_csv(tmp_path / "whole" / "steps.csv")]
    resumed, uninterrupted = _load(run / "last.pth.tar"), _load(tmp_path / "whole" / "last.pth.tar")
    for key in ("state_dict", "state_dict_ema", "optimizer"):
        assert str(resumed[key]) == str(uninterrupted[key])
    for key in ("state_dict", "state_dict_ema"):
        assert all(torch.equal(resumed[key][k], uninterrupted[key][k]) for k in uninterrupted[key])
    assert resumed["saver"] == uninterrupted["saver"] and resumed["step"] == uninterrupted["step"]


def _run_in_process(*argv: str) -> int:
    return train(parse_args(list(argv)))


@pytest.mark.parametrize("case, error, match", [
    ("missing-dir", FileNotFoundError, "data directory not found"),
    ("no-data", ValueError, "no dataset given"),
    ("empty-class", ValueError, "hold no images"),
    ("unknown-model", ValueError, "unknown model 'hydra_vit_tiyn'; did you mean hydra_vit_tiny"),
    ("too-few-classes", ValueError, "3 classes but --num-classes is 2"),
    ("other-model-checkpoint", ValueError, "trained with model 'hydra_vit_tiny', not 'deit_tiny_patch16_224'"),
    ("missing-resume", FileNotFoundError, "checkpoint not found"),
    ("resized-model-resume", ValueError, r"does not fit model hydra_vit_tiny: missing keys: blocks\.2\."),
    ("odd-batch-mixup", ValueError, "--batch-size must be even, got 3"),
    ("no-val-split", ValueError, "no 'validation' folder under .* it holds train"),
    ("other-optimizer-resume", ValueError, "trained with --opt adamw, not sgd; .*--no-resume-opt"),
    ("zero-log-interval", ValueError, "--log-interval must be at least 1, got 0"),
])
def test_bad_input_is_a_clear_error(case: str, error: type, match: str, image_folder: Path, trained_run: Path,
                                    tmp_path: Path) -> None:
    base = ["-b", "2", "-j", "0", "--epochs", "1", "--output", str(tmp_path)]
    data = str(image_folder)
    argv = {
        "missing-dir": [str(tmp_path / "nowhere"), *TINY_MODEL],
        "no-data": TINY_MODEL,
        "empty-class": [data, *TINY_MODEL],
        "unknown-model": [data, "--model", "hydra_vit_tiyn"],
        "too-few-classes": [data, *TINY_MODEL, "--num-classes", "2"],
        "other-model-checkpoint": [data, "--model", "deit_tiny_patch16_224", "--model-kwargs", "img_size=32",
                                   "depth=1", "--resume", str(trained_run / "last.pth.tar")],
        "missing-resume": [data, *TINY_MODEL, "--resume", str(tmp_path / "none.pth.tar")],
        "resized-model-resume": [data, "--model", "hydra_vit_tiny", "--model-kwargs", "depth=3", "img_size=32",
                                 "--resume", str(trained_run / "last.pth.tar")],
        "odd-batch-mixup": [data, *TINY_MODEL],
        "no-val-split": [data, *TINY_MODEL],
        "zero-log-interval": [data, *TINY_MODEL, "--log-interval", "0"],
        "other-optimizer-resume": [data, *TINY_MODEL, "--model-ema", "--opt", "sgd",
                                   "--resume", str(trained_run / "last.pth.tar")],
    }[case]
    if case in ("empty-class", "no-val-split"):
        argv[0] = str(tmp_path / "data")
        shutil.copytree(image_folder, argv[0])
    if case == "empty-class":
        (tmp_path / "data" / "train" / "class_new").mkdir()
    if case == "no-val-split":
        shutil.rmtree(tmp_path / "data" / "val")
    last = ["-b", "3", "--mixup", "0.8"] if case == "odd-batch-mixup" else []  # after base's -b 2
    with pytest.raises(error, match=match):
        _run_in_process(*argv, *base, *last)


def test_unreadable_images_are_skipped_counted_and_training_completes(image_folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "train" / "class_001" / "class_001_0003.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (data / "val" / "class_002" / "class_002_0000.jpg").write_bytes(b"")
    code = _run_in_process(str(data), *TINY_MODEL, "-b", "5", "-j", "1", "--epochs", "2", "--opt", "adamw",
                           "--lr", "1e-3", "--output", str(tmp_path), "--experiment", "corrupt")
    assert code == 0
    summary = read_csv(tmp_path / "corrupt" / "summary.csv")
    assert [float(r["train_skipped_images"]) for r in summary] == [1.0, 1.0]


def test_initial_checkpoint_starts_from_its_ema_weights(trained_run: Path, image_folder: Path) -> None:
    args = parse_args([str(image_folder), *TINY_MODEL, "--initial-checkpoint", str(trained_run / "last.pth.tar")])
    model = create_training_model(args, num_classes=3)
    ema = _load(trained_run / "last.pth.tar")["state_dict_ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())


def _parts(args, model: torch.nn.Module, ema: bool) -> SimpleNamespace:
    """What `_load_resume` / `_checkpoint_state` use of TrainParts, with the run's optimizer and schedule."""
    optimizer = create_optimizer(args, model)
    scheduler, _ = create_scheduler(args, optimizer, updates_per_epoch=1)
    return SimpleNamespace(raw_model=model, optimizer=optimizer, scheduler=scheduler, scaler=None,
                           ema=ModelEmaV3(model) if ema else None)


def test_resuming_a_checkpoint_without_ema_starts_the_ema_from_its_weights(trained_run: Path, image_folder: Path,
                                                                           tmp_path: Path) -> None:
    checkpoint = _load(trained_run / "last.pth.tar")
    del checkpoint["state_dict_ema"]
    torch.save(checkpoint, tmp_path / "no_ema.pth.tar")
    args = parse_args([str(image_folder), *TINY_MODEL, "--model-ema", "--no-resume-opt",
                       "--resume", str(tmp_path / "no_ema.pth.tar")])
    parts = _parts(args, create_training_model(args, num_classes=3), ema=True)
    _load_resume(args, parts, class_names=None)
    weights = checkpoint["state_dict"]
    assert all(torch.equal(v, weights[k]) for k, v in parts.ema.module.state_dict().items())


def test_plateau_schedule_resumes_with_its_patience_counters(image_folder: Path, tmp_path: Path) -> None:
    """timm's plateau state keeps only the best metric and the epoch; torch's counters travel too, so a
    resumed run lowers the learning rate at the same epoch as an uninterrupted one."""
    argv = [str(image_folder), *TINY_MODEL, "--opt", "sgd", "--lr", "1.0", "--sched", "plateau",
            "--patience-epochs", "2", "--decay-rate", "0.1", "--warmup-epochs", "0", "--eval-metric", "loss"]
    args = parse_args(argv)
    model = create_training_model(args, num_classes=3)
    uninterrupted, resumed = _parts(args, model, ema=False), None
    lrs = {"uninterrupted": [], "resumed": []}
    for epoch in range(6):
        if epoch == 2:  # save after two epochs without improvement, resume into a fresh schedule
            state = {**_checkpoint_state(args, uninterrupted, None, 0, []), "epoch": epoch - 1}
            torch.save(state, tmp_path / "last.pth.tar")
            resumed_args = parse_args([*argv, "--resume", str(tmp_path / "last.pth.tar")])
            resumed = _parts(resumed_args, model, ema=False)
            _load_resume(resumed_args, resumed, class_names=None)
        for name, parts in (("uninterrupted", uninterrupted), ("resumed", resumed)):
            if parts is not None:
                parts.scheduler.step(epoch + 1, metric=1.0)  # the loss never improves
                lrs[name].append(parts.optimizer.param_groups[0]["lr"])
    assert lrs["resumed"] == lrs["uninterrupted"][2:]
    assert min(lrs["uninterrupted"]) < 1.0  # the patience ran out within the 6 epochs


def test_config_file_errors_are_one_clear_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hydra_vision.training import main

    (tmp_path / "bad.yaml").write_text("model: hydra_vit_tiny\nnot_an_option: 3\n")
    assert main(["-c", str(tmp_path / "bad.yaml"), str(tmp_path)]) == 2
    assert main(["-c", str(tmp_path / "missing.yaml"), str(tmp_path)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and "not_an_option" in errors[0] and "config file not found" in errors[1], errors
