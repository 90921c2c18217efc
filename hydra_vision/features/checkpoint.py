"""Loading weights for extraction: our training checkpoints, timm checkpoints and .safetensors.

timm's `load_state_dict` reads the file (picking `state_dict_ema`/`model_ema` or
`state_dict`/`model` inside training checkpoints and removing DDP/compile prefixes); the
model's own `checkpoint_filter_fn` then remaps it (e.g. resampling position embeddings
to the model's image size). Keys and shapes are compared with the model before loading,
so a checkpoint of another model fails with a message that names the mismatch.
"""
from __future__ import annotations

import os
import sys

import torch
from safetensors import safe_open
from timm.models import load_state_dict
from timm.utils.checkpoint_saver import load_checkpoint_metadata

__all__ = ["load_weights"]

EMA_KEYS = ("state_dict_ema", "model_ema")


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def _mismatch(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    """Human-readable differences between a state dict and the model's own."""
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


def _drop_absent_classifier(state_dict: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Removes classifier weights when the model was built without a classifier (num_classes=0)."""
    classifiers = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    prefixes = tuple(f"{c}." for c in ([classifiers] if isinstance(classifiers, str) else classifiers))
    if not prefixes:
        return state_dict
    expected = model.state_dict()
    return {k: v for k, v in state_dict.items() if k in expected or not k.startswith(prefixes)}


def _checkpoint_arch(path: str) -> str | None:
    """The model name a checkpoint records (`arch` of a training checkpoint or .safetensors metadata), if any."""
    if path.endswith(".safetensors"):
        with safe_open(path, framework="pt") as f:
            return (f.metadata() or {}).get("arch")
    metadata = load_checkpoint_metadata(path)
    return metadata.get("arch") if isinstance(metadata, dict) else None


def load_weights(model: torch.nn.Module, path: str | os.PathLike, ema: bool = False) -> None:
    """Loads a checkpoint into `model` in place (strictly: every key, every shape).

    Classifier weights are ignored when the model has no classifier (`num_classes=0`).

    Args:
        model: the model to fill.
        path: a training checkpoint (dict with `state_dict` and optionally
            `state_dict_ema`), a plain state dict (.pth/.pt/.bin) or a .safetensors file.
        ema: load the EMA weights (`state_dict_ema` or `model_ema`) of a training checkpoint.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: `ema` but the checkpoint holds no EMA weights, or the checkpoint's
            keys or shapes do not match the model (the message lists them).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    if ema:
        metadata = {} if path.endswith(".safetensors") else load_checkpoint_metadata(path)
        if not (isinstance(metadata, dict) and any(metadata.get(k) is not None for k in EMA_KEYS)):
            raise ValueError(f"EMA weights were asked for, but {path!r} holds none ({' or '.join(EMA_KEYS)})")
    state_dict = load_state_dict(path, use_ema=ema)
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    try:
        filtered = filter_fn(state_dict, model) if filter_fn is not None else state_dict
    except Exception:  # a foreign checkpoint can break the model's remapping; report the raw mismatch
        filtered = state_dict
    filtered = _drop_absent_classifier(filtered, model)
    problems = _mismatch(filtered, model)
    if problems:
        name = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        arch = _checkpoint_arch(path)
        source = f"{path!r}" + (f" (saved from {arch!r})" if arch else "")
        raise ValueError(f"checkpoint {source} does not match model {name!r}: " + "; ".join(problems))
    model.load_state_dict(filtered, strict=True)
