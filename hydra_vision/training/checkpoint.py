"""Writing checkpoint files: atomic writes, `weights_only`-loadable contents, .safetensors export.

A training checkpoint is a dict of tensors and plain Python values, with timm's keys
(`state_dict`, `state_dict_ema`, `optimizer`, `epoch`, `version`, `arch`, `args`, `metric`,
`saver`, `amp_scaler`) so timm's `train.py --resume` and `validate.py --checkpoint` read it,
plus `scheduler`, `step`, `rng` (one entry per rank), `class_names`. Every file is written to
a temporary name, flushed to disk, then renamed over its target: a reader, or a process killed
mid-write, sees either the old file or the new one, never a partial one.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from timm.utils import CheckpointSaver

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "export_safetensors",
    "AtomicCheckpointSaver",
]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write `path` through `write(file)` on a temporary sibling, fsync, then rename over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | Path) -> None:
    """`torch.save(obj, path)`, atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text), mode="w")


def export_safetensors(state_dict: dict[str, torch.Tensor], path: str | Path, arch: str) -> None:
    """Write a state dict as .safetensors (atomically), with the model name in its metadata."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    data = safetensors.torch.save(tensors, metadata={"arch": arch, "format": "pt"})
    _atomic_write(path, lambda f: f.write(data))


class AtomicCheckpointSaver(CheckpointSaver):
    """timm's CheckpointSaver (history, `last`, `model_best`, ranking) with safe file handling.

    timm's version pickles `args` (an argparse.Namespace, which `weights_only` loading refuses),
    unlinks `last`/`model_best` before replacing them (a kill in between leaves none), and does
    not fsync. Here `_save` writes the dict from `state_fn()` atomically, `_replace` is a single
    rename, and `_duplicate` links (or copies) to a temporary name and renames that.

    Args:
        state_fn: returns the checkpoint contents (tensors and plain Python values only).
        checkpoint_dir: run folder.
        decreasing: a lower metric is better.
        max_history: numbered checkpoints kept.
    """

    def __init__(self, state_fn: Callable[[], dict[str, Any]], checkpoint_dir: str | Path,
                 decreasing: bool = False, max_history: int = 10) -> None:
        super().__init__(model=None, optimizer=None, checkpoint_dir=str(checkpoint_dir),
                         recovery_dir=str(checkpoint_dir), decreasing=decreasing, max_history=max_history)
        self.state_fn = state_fn

    def _save(self, save_path: str, epoch: int, metric: float | None = None) -> None:
        state = self.state_fn()
        state.update(epoch=epoch, version=2, metric=metric, saver=self.state_dict(epoch, metric))
        atomic_save(state, save_path)

    def _replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def _duplicate(self, src: str, dst: str) -> None:
        tmp = f"{dst}.{os.getpid()}.tmp"
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
