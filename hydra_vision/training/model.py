"""The model of a run, created through `timm.create_model` from the training options."""
from __future__ import annotations

import argparse
import difflib
import logging

import timm
import torch

from ..checkpoint_io import load_model_weights

__all__ = ["check_model_name", "create_training_model"]

_logger = logging.getLogger(__name__)


def check_model_name(name: str) -> None:
    """Raise a ValueError naming close matches when timm has no model `name`."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}{hint} (timm.list_models() lists the names)")


def create_training_model(args: argparse.Namespace, num_classes: int) -> torch.nn.Module:
    """`timm.create_model` with train.py's options, then `--initial-checkpoint` (EMA weights if present)."""
    check_model_name(args.model)
    in_chans = args.in_chans or (args.input_size[0] if args.input_size else 3)
    model = timm.create_model(
        args.model, pretrained=args.pretrained, in_chans=in_chans, num_classes=num_classes,
        drop_rate=args.drop, drop_path_rate=args.drop_path, drop_block_rate=args.drop_block,
        global_pool=args.gp, **args.model_kwargs,
    )
    if args.initial_checkpoint:
        load_model_weights(model, args.initial_checkpoint, use_ema=None)
        _logger.info(f"loaded initial weights from {args.initial_checkpoint}")
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    return model

