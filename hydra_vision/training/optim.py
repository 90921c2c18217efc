"""Optimizer, learning rate and schedule of a run, from timm's factories (as train.py uses them)."""
from __future__ import annotations

import argparse
import logging
from typing import Any

import torch
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

__all__ = ["resolve_lr", "create_optimizer", "create_scheduler"]

_logger = logging.getLogger(__name__)


def resolve_lr(args: argparse.Namespace, world_size: int) -> None:
    """Set `args.lr` from `--lr-base` when `--lr` is not given (timm's rule).

    lr = lr_base * (global_batch / lr_base_size), or its square root for "sqrt" scaling, with
    global_batch = batch_size * world_size * grad_accum_steps. An empty `--lr-base-scale` means
    "sqrt" for Ada*/Lamb optimizers and "linear" otherwise.
    """
    if args.lr is not None:
        return
    global_batch = args.batch_size * world_size * args.grad_accum_steps
    if not args.lr_base_scale:
        args.lr_base_scale = "sqrt" if any(o in args.opt.lower() for o in ("ada", "lamb")) else "linear"
    if args.lr_base_scale not in ("linear", "sqrt"):
        raise ValueError(f"--lr-base-scale must be 'linear' or 'sqrt', got {args.lr_base_scale!r}")
    ratio = global_batch / args.lr_base_size
    args.lr = args.lr_base * (ratio ** 0.5 if args.lr_base_scale == "sqrt" else ratio)
    _logger.info(f"lr {args.lr:.3g} = lr_base {args.lr_base} x ({global_batch} / {args.lr_base_size}), "
                 f"{args.lr_base_scale} scaling")


def create_optimizer(args: argparse.Namespace, model: torch.nn.Module) -> torch.optim.Optimizer:
    """timm's `create_optimizer_v2` (weight-decay groups, `--layer-decay`) with train.py's options."""
    return create_optimizer_v2(model, **optimizer_kwargs(cfg=args), **args.opt_kwargs)


def create_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer,
                     updates_per_epoch: int) -> tuple[Any, int]:
    """timm's `create_scheduler_v2`; returns (scheduler, number of epochs incl. cooldown)."""
    decreasing = args.eval_metric == "loss"
    return create_scheduler_v2(optimizer, **scheduler_kwargs(args, decreasing_metric=decreasing),
                               updates_per_epoch=updates_per_epoch)
