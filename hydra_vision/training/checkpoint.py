"""Checkpoint files: atomic writes, `weights_only` contents, weight loading, .safetensors export.

A training checkpoint is a dict of tensors and plain Python values, with timm's keys
(`state_dict`, `state_dict_ema`, `optimizer`, `epoch`, `version`, `arch`, `args`, `metric`,
`saver`, `amp_scaler`) so timm's `train.py --resume` and `validate.py --checkpoint` read it,
plus `scheduler`, `step`, `rng` (one entry per rank), `class_names`. Every file is written to
a temporary name, flushed to disk, then renamed over its target: a reader, or a process killed
mid-write, sees either the old file or the new one, never a partial one.
"""
from __future__ import annotations

import argparse
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from timm.models import clean_state_dict
from timm.utils import CheckpointSaver

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "load_checkpoint_file",
    "model_state_from_checkpoint",
    "load_model_weights",
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


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)` onto the CPU.

    As timm's loader does, an `argparse.Namespace` (the `args` of checkpoints written by timm's
    train.py) is allowed too, and returned as a dict; nothing else that would need code to load.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a readable checkpoint dict, or needs code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:
            unsafe = []
        if unsafe:
            raise ValueError(f"{path} holds Python objects ({', '.join(unsafe)}) that weights_only loading "
                             f"refuses: a checkpoint must hold only tensors and plain Python values") from None
        raise ValueError(f"cannot read checkpoint {path}: not a torch file ({str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read checkpoint {path}: truncated or not a torch file ({e})") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a checkpoint dict (got {type(checkpoint).__name__})")
    if isinstance(checkpoint.get("args"), argparse.Namespace):
        checkpoint["args"] = vars(checkpoint["args"])
    return checkpoint


def model_state_from_checkpoint(checkpoint: dict[str, Any], use_ema: bool | None,
                                path: str | Path) -> dict[str, Any]:
    """The model or EMA state dict of a training checkpoint (or a bare state dict), wrapper prefixes removed.

    `use_ema`: True: the EMA weights (an error without them); False: the model's; None: EMA when present.
    """
    if use_ema is None:
        use_ema = checkpoint.get("state_dict_ema") is not None
    if use_ema:
        if checkpoint.get("state_dict_ema") is None:
            raise ValueError(f"{path} holds no EMA weights (state_dict_ema); train with --model-ema or drop --use-ema")
        return clean_state_dict(checkpoint["state_dict_ema"])
    if "state_dict" in checkpoint:
        return clean_state_dict(checkpoint["state_dict"])
    if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return clean_state_dict(checkpoint)
    raise ValueError(f"{path} has no 'state_dict' and is not a state dict")


def load_model_weights(model: torch.nn.Module, path: str | Path, use_ema: bool | None = False,
                       model_name: str | None = None) -> None:
    """Load weights from a checkpoint (.pth/.pth.tar; `use_ema` as in `model_state_from_checkpoint`)
    or a .safetensors file into `model`.

    Raises:
        ValueError: the file was written for another model (`arch`), or its keys/shapes differ from `model`'s.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        if use_ema:
            raise ValueError(f"{path}: a .safetensors file holds one set of weights; drop --use-ema")
        state_dict = safetensors.torch.load_file(path)
        arch = (safetensors.safe_open(path, "pt").metadata() or {}).get("arch")
    else:
        checkpoint = load_checkpoint_file(path)
        state_dict = model_state_from_checkpoint(checkpoint, use_ema, path)
        arch = checkpoint.get("arch")
    if model_name is not None and arch is not None and arch != model_name:
        raise ValueError(f"{path} was trained with model {arch!r}, not {model_name!r}")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        first = str(e).splitlines()[1:4]
        raise ValueError(f"{path} does not fit model {model_name or type(model).__name__}: "
                         + " ".join(line.strip() for line in first)) from None


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
