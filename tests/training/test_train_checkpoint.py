"""Checkpoint files: atomic under SIGKILL, saver history, .safetensors export, RNG state."""
from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors import safe_open

from hydra_vision.checkpoint_io import load_checkpoint_file
from hydra_vision.training.checkpoint import AtomicCheckpointSaver, export_safetensors
from hydra_vision.training.rng import capture_rng_state, restore_rng_state

from ._helpers import subprocess_env

# The child saves epoch 1 through the real saver, but its torch.save writes half of the bytes,
# flushes them to disk and stalls: it is killed there, in the middle of writing the checkpoint.
_KILLED_SAVE = textwrap.dedent("""
    import io, sys, time
    from pathlib import Path
    import torch
    from hydra_vision.training.checkpoint import AtomicCheckpointSaver

    real_save = torch.save
    def half_save(obj, f):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        Path(sys.argv[2]).touch()
        time.sleep(300)
    torch.save = half_save

    run_dir = Path(sys.argv[1])
    saver = AtomicCheckpointSaver(lambda: {"state_dict": {"w": torch.full((4096,), 2.0)}}, run_dir, max_history=3)
    saver.load_state_dict(torch.load(run_dir / "last.pth.tar", weights_only=True)["saver"])
    saver.save_checkpoint(1, metric=99.0)
""")


def _state(value: float) -> dict:
    return {"state_dict": {"w": torch.full((4096,), value)}}


def test_checkpoint_survives_a_kill_during_save(tmp_path: Path) -> None:
    saver = AtomicCheckpointSaver(lambda: _state(1.0), tmp_path, max_history=3)
    saver.save_checkpoint(0, metric=50.0)
    marker = tmp_path / "writing"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(tmp_path), str(marker)], env=subprocess_env())
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the saving process ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)

    partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint_file(partial[0])
    for name in ("last.pth.tar", "model_best.pth.tar", "checkpoint-0.pth.tar"):
        checkpoint = torch.load(tmp_path / name, weights_only=True)
        assert checkpoint["epoch"] == 0 and checkpoint["metric"] == 50.0
        assert torch.equal(checkpoint["state_dict"]["w"], torch.full((4096,), 1.0))
    assert not (tmp_path / "checkpoint-1.pth.tar").exists()

    saver.save_checkpoint(1, metric=60.0)
    assert torch.load(tmp_path / "model_best.pth.tar", weights_only=True)["epoch"] == 1


def test_saver_ranks_and_trims_history(tmp_path: Path) -> None:
    value = [0.0]
    saver = AtomicCheckpointSaver(lambda: _state(value[0]), tmp_path, max_history=2)
    for epoch, metric in enumerate([10.0, 30.0, 20.0, 5.0]):
        value[0] = float(epoch)
        best = saver.save_checkpoint(epoch, metric=metric)
    assert best == (30.0, 1)
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*.pth.tar"))
    assert kept == ["checkpoint-1.pth.tar", "checkpoint-2.pth.tar"]
    assert torch.load(tmp_path / "model_best.pth.tar", weights_only=True)["state_dict"]["w"][0] == 1.0
    last = torch.load(tmp_path / "last.pth.tar", weights_only=True)
    assert last["epoch"] == 3 and last["state_dict"]["w"][0] == 3.0 and last["version"] == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_safetensors_export_holds_the_weights_and_the_model_name(tmp_path: Path) -> None:
    model = timm.create_model("hydra_vit_tiny", depth=1, img_size=32, num_classes=3)
    path = tmp_path / "model.safetensors"
    export_safetensors(model.state_dict(), path, arch="hydra_vit_tiny")
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == {"arch": "hydra_vit_tiny", "format": "pt"}
        assert sorted(f.keys()) == sorted(model.state_dict())
        assert all(torch.equal(f.get_tensor(k), v) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob("*.tmp"))


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), float(np.random.randn())


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    state = capture_rng_state(torch.device("cpu"))
    expected = _draws()
    buffer = io.BytesIO()
    torch.save({"rng": [state]}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"][0]
    _draws()
    restore_rng_state(loaded, torch.device("cpu"))
    assert _draws() == expected
