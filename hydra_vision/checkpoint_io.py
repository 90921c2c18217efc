"""Reading checkpoints: `weights_only` training checkpoints, timm state dicts and .safetensors into a model.

One loader serves training (`--initial-checkpoint`), `validate` and feature extraction. It picks
the model or EMA weights of a training checkpoint (timm's keys: `state_dict`/`model`,
`state_dict_ema`/`model_ema`), removes DDP/torch.compile prefixes, runs the model's own
`checkpoint_filter_fn` (e.g. resampling position embeddings to the model's image size), and
compares keys and shapes with the model before loading, so a checkpoint of another model fails
with a message that names the mismatch.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import safetensors
import torch
from timm.models import clean_state_dict

__all__ = ["load_checkpoint_file", "load_model_weights", "state_dict_mismatch"]

MODEL_KEYS = ("state_dict", "model")
EMA_KEYS = ("state_dict_ema", "model_ema")


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
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


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of a .safetensors file and the model name in its metadata (`arch`), if any."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {}).get("arch")
    except safetensors.SafetensorError as e:
        raise ValueError(f"cannot read checkpoint {path}: truncated or not a .safetensors file ({e})") from None


def _select_weights(checkpoint: dict[str, Any], use_ema: bool | None, path: Path) -> dict[str, Any]:
    """The model or EMA weights of a training checkpoint, or a bare state dict.

    `use_ema`: True: the EMA weights (an error without them); False: the model's; None: EMA when present.
    """
    ema_key = next((k for k in EMA_KEYS if isinstance(checkpoint.get(k), dict)), None)
    if use_ema and ema_key is None:
        raise ValueError(f"EMA weights were asked for, but {path} holds none ({' or '.join(EMA_KEYS)})")
    if use_ema is not False and ema_key is not None:
        return checkpoint[ema_key]
    model_key = next((k for k in MODEL_KEYS if isinstance(checkpoint.get(k), dict)), None)
    if model_key is not None:
        return checkpoint[model_key]
    if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ValueError(f"{path} holds no weights: no {' or '.join(MODEL_KEYS)} entry and not a state dict")


def _filter(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model module's `checkpoint_filter_fn` applied to `state_dict` (unchanged without one).

    A foreign checkpoint can break the model's remapping; it is then returned as it is, so the
    key and shape comparison reports the raw mismatch.
    """
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state_dict
    try:
        return filter_fn(state_dict, model)
    except Exception:
        return state_dict


def _drop_absent_classifier(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Removes classifier weights when the model was built without a classifier (num_classes=0)."""
    classifiers = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    prefixes = tuple(f"{c}." for c in ([classifiers] if isinstance(classifiers, str) else classifiers))
    if not prefixes:
        return state_dict
    expected = model.state_dict()
    return {k: v for k, v in state_dict.items() if k in expected or not k.startswith(prefixes)}


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def state_dict_mismatch(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    """Human-readable differences between a state dict and the model's own (empty when it fits)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch (checkpoint vs model): {_describe(shapes)}")
    return problems


def load_model_weights(model: torch.nn.Module, path: str | os.PathLike, use_ema: bool | None = False,
                       model_name: str | None = None) -> None:
    """Loads a checkpoint into `model` in place (strictly: every key, every shape).

    Classifier weights are ignored when the model has no classifier (`num_classes=0`).

    Args:
        model: the model to fill.
        path: a training checkpoint (.pth/.pth.tar: a dict with `state_dict` or `model`, and
            optionally `state_dict_ema` or `model_ema`), a plain state dict (.pth/.pt/.bin) or a
            .safetensors file.
        use_ema: True: the EMA weights (an error without them); False: the model's; None: the
            EMA weights when the checkpoint holds them, else the model's.
        model_name: the model's timm name; a checkpoint that records another (`arch`) is refused.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is unreadable or needs code to load; `use_ema` but it holds no EMA
            weights; it records another `arch` than `model_name`; or its keys or shapes do not
            match the model (the message lists them).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state_dict, arch = _read_safetensors(path)
        if use_ema:
            raise ValueError(f"EMA weights were asked for, but {path} is a .safetensors file: one set of weights")
    else:
        checkpoint = load_checkpoint_file(path)
        state_dict, arch = _select_weights(checkpoint, use_ema, path), checkpoint.get("arch")
    if model_name is not None and arch is not None and arch != model_name:
        raise ValueError(f"{path} was trained with model {arch!r}, not {model_name!r}")
    state_dict = _drop_absent_classifier(_filter(clean_state_dict(state_dict), model), model)
    problems = state_dict_mismatch(state_dict, model)
    if problems:
        name = model_name or getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        source = f"{path}" + (f" (saved from {arch!r})" if arch else "")
        raise ValueError(f"checkpoint {source} does not match model {name!r}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
