"""The epoch loops: one training epoch (grad accumulation, clipping, AMP, EMA, per-update LR)
and an evaluation pass (top-1 / top-5 / loss, exact under DDP).

The training step follows timm's train.py: the loss of an accumulated update is divided by the
number of micro-batches, DDP skips the gradient all-reduce on micro-batches that do not update,
the EMA and the scheduler advance once per optimizer update.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from timm.models import model_parameters
from timm.utils import ModelEmaV3, NativeScaler, dispatch_clip_grad
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .compile_workers import release_compile_workers
from .distributed import DistContext
from .signals import StopRequest

__all__ = ["TrainParts", "EpochProgress", "train_one_epoch", "evaluate", "mean_lr"]

_logger = logging.getLogger(__name__)

StepLogger = Callable[[int, int, float, float, float], None]


@dataclass
class TrainParts:
    """What a training epoch uses: `model` is the wrapped (DDP / compiled) module, `raw_model` the
    bare one (EMA source, state dicts)."""

    model: torch.nn.Module
    raw_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: torch.nn.Module
    autocast: Callable[[], AbstractContextManager]
    ctx: DistContext
    ema: ModelEmaV3 | None = None
    scaler: NativeScaler | None = None
    mixup_fn: Callable | None = None


@dataclass
class EpochProgress:
    """How far an epoch got: batches done (per process) and, over all processes, the sum of their
    per-sample losses and their sample count, in the epoch and since the last logged row (the window
    that the next steps.csv row averages). A resumed epoch starts from it."""

    batches: int = 0
    loss_sum: float = 0.0
    samples: int = 0
    window_loss_sum: float = 0.0
    window_samples: int = 0

    def updates(self, accum: int) -> int:
        """Optimizer updates these batches made with `accum` micro-batches per update."""
        return math.ceil(self.batches / accum)


def mean_lr(optimizer: torch.optim.Optimizer) -> float:
    """The mean learning rate of the optimizer's parameter groups (what the logs and summary.csv show)."""
    lrs = [group["lr"] for group in optimizer.param_groups]
    return sum(lrs) / len(lrs)


def _set_mixup(loader: Any, mixup_fn: Callable | None, enabled: bool) -> None:
    if mixup_fn is not None:
        mixup_fn.mixup_enabled = enabled
    elif hasattr(loader, "mixup_enabled"):
        loader.mixup_enabled = enabled


def train_one_epoch(parts: TrainParts, loader: Any, epoch: int, args: argparse.Namespace, stop: StopRequest,
                    total_updates: int, log_step: StepLogger | None = None,
                    start: EpochProgress | None = None) -> tuple[dict[str, float], EpochProgress]:
    """Train one epoch, or the rest of one.

    Args:
        parts: model, optimizer, scheduler, loss, AMP, EMA, mixup, process context.
        loader: timm train loader (yields (images, targets); targets soft when mixup is in the collate);
            `len(loader)` is the whole epoch's batches, resumed or not.
        epoch: 0-based epoch; updates are counted from `epoch * updates_per_epoch`.
        args: the run's options (grad_accum_steps, clip_grad, clip_mode, channels_last, log_interval, ...).
        stop: checked after every optimizer update but the epoch's last, agreed over all processes.
        total_updates: updates in the whole run (for the ETA).
        log_step: called on the primary process every `log_interval` updates with
            (epoch, update count, mean loss since the last call, lr, samples/s over all processes).
        start: where an interrupted epoch stopped: `loader` then yields only the batches after
            `start.batches` (a multiple of grad_accum_steps), and the loss sums carry on (the first
            logged row after it averages the loss over the same updates as an uninterrupted run's).

    Returns:
        ({"loss": mean training loss of the epoch over all processes}, the progress reached: the
        epoch completed when `progress.batches == len(loader)`).
    """
    start = start or EpochProgress()
    ctx, model, optimizer = parts.ctx, parts.model, parts.optimizer
    if args.mixup_off_epoch:
        _set_mixup(loader, parts.mixup_fn, epoch < args.mixup_off_epoch)
    model.train()
    num_batches = len(loader)
    accum = args.grad_accum_steps
    updates_per_epoch = math.ceil(num_batches / accum)
    last_accum = num_batches % accum or accum
    first_of_last_group = num_batches - last_accum
    num_updates = epoch * updates_per_epoch + start.updates(accum)
    first_update = num_updates + 1
    has_no_sync = hasattr(model, "no_sync")
    clip_params = list(model_parameters(parts.raw_model, exclude_head="agc" in args.clip_mode))

    epoch_loss = torch.zeros((), device=ctx.device, dtype=torch.float64)
    # the window carried over a stop counts once in the sums over processes: on the primary
    carried = start.window_samples
    window_loss = torch.tensor(start.window_loss_sum if ctx.is_primary else 0.0, device=ctx.device,
                               dtype=torch.float64)
    window_samples = carried if ctx.is_primary else 0
    epoch_samples = window_updates = 0
    window_start = time.perf_counter()
    batches_done = num_batches
    bar = tqdm(total=num_batches, initial=start.batches, desc=f"train {epoch}", unit="batch", dynamic_ncols=True,
               disable=None if ctx.is_primary else True, leave=False)
    optimizer.zero_grad(set_to_none=True)
    with logging_redirect_tqdm():
        for batch_idx, (inputs, targets) in enumerate(loader, start=start.batches):
            micro = last_accum if batch_idx >= first_of_last_group else accum
            need_update = batch_idx == num_batches - 1 or (batch_idx + 1) % accum == 0
            inputs, targets = inputs.to(ctx.device, non_blocking=True), targets.to(ctx.device, non_blocking=True)
            if parts.mixup_fn is not None:
                inputs, targets = parts.mixup_fn(inputs, targets)
            if args.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            sync = nullcontext() if need_update or not has_no_sync else model.no_sync()
            with sync:
                with parts.autocast():
                    output = model(inputs)
                    loss = parts.loss_fn(output, targets)
                scaled = loss / micro
                if parts.scaler is not None:
                    parts.scaler(scaled, optimizer, clip_grad=args.clip_grad, clip_mode=args.clip_mode,
                                 parameters=clip_params, need_update=need_update)
                else:
                    scaled.backward()
                    if need_update:
                        if args.clip_grad is not None:
                            dispatch_clip_grad(clip_params, value=args.clip_grad, mode=args.clip_mode)
                        optimizer.step()
            batch_loss = loss.detach().to(torch.float64) * inputs.size(0)
            epoch_loss += batch_loss
            window_loss += batch_loss
            epoch_samples += inputs.size(0)
            window_samples += inputs.size(0)
            bar.update(1)
            if not need_update:
                continue

            num_updates += 1
            window_updates += 1
            optimizer.zero_grad(set_to_none=True)
            if num_updates == first_update:  # the step is compiled by now: its idle compile workers slow the host
                release_compile_workers()
            if parts.ema is not None:
                parts.ema.update(parts.raw_model, step=num_updates)
            if args.synchronize_step and ctx.device.type == "cuda":
                torch.cuda.synchronize()
            if parts.scheduler is not None:
                parts.scheduler.step_update(num_updates=num_updates)

            update_idx = batch_idx // accum
            if (update_idx + 1) % args.log_interval == 0 or batch_idx == num_batches - 1:
                totals = ctx.all_reduce_sum(torch.stack([window_loss, window_loss.new_tensor(window_samples)]))
                elapsed = time.perf_counter() - window_start
                mean_loss = (totals[0] / totals[1]).item()
                rate = (totals[1].item() - carried) / max(elapsed, 1e-9)
                lr = mean_lr(optimizer)
                remaining = (total_updates - num_updates) * elapsed / window_updates
                bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.3g}", img_s=f"{rate:.0f}")
                if ctx.is_primary:
                    _logger.info(f"train {epoch} [{update_idx + 1}/{updates_per_epoch}] loss {mean_loss:.4g} "
                                 f"lr {lr:.3e} {rate:.0f} img/s, run ETA "
                                 f"{datetime.timedelta(seconds=round(remaining))}")
                    if log_step is not None:
                        log_step(epoch, num_updates, mean_loss, lr, rate)
                window_loss.zero_()
                window_samples = window_updates = carried = 0
                window_start = time.perf_counter()
            if batch_idx < num_batches - 1 and ctx.any(stop.requested):
                batches_done = batch_idx + 1
                break
    bar.close()
    if hasattr(optimizer, "sync_lookahead"):
        optimizer.sync_lookahead()
    totals = ctx.all_reduce_sum(torch.stack([epoch_loss, epoch_loss.new_tensor(epoch_samples), window_loss,
                                             window_loss.new_tensor(window_samples)])).tolist()
    progress = EpochProgress(batches_done, start.loss_sum + totals[0], start.samples + round(totals[1]),
                             totals[2], round(totals[3]))
    return {"loss": progress.loss_sum / max(progress.samples, 1)}, progress


@torch.no_grad()
def evaluate(models: Mapping[str, torch.nn.Module], loader: Any, ctx: DistContext,
             autocast: Callable[[], AbstractContextManager] = nullcontext, channels_last: bool = False,
             desc: str = "eval") -> dict[str, dict[str, float]]:
    """Cross-entropy loss, top-1 and top-5 accuracy (%) of each model over the whole eval set.

    One pass over `loader` scores every model of `models` (name -> module; e.g. the model and its
    EMA), so the images are decoded once. Hits and loss sums stay on the device until the end (no
    sync per batch); top-k hits are counted exactly, so any batching gives the same scores. Under
    DDP each process scores its shard of timm's `OrderedDistributedSampler`; the padding that evens
    out the shards runs through the models (every process makes the same calls) but is left out of
    the scores, so the result equals a single-process pass. Inductor's compile workers are released
    after the first batch. Returns {name: {loss, top1, top5}}.
    """
    sampler = getattr(loader, "sampler", None)
    num_valid = getattr(sampler, "num_valid_samples", None)
    if num_valid is None:
        num_valid = len(loader.dataset)
    for model in models.values():
        model.eval()
    sums = torch.zeros(len(models), 3, dtype=torch.float64, device=ctx.device)  # loss, top-1 hits, top-k hits
    seen = 0
    batches = tqdm(loader, desc=desc, unit="batch", leave=False, disable=None if ctx.is_primary else True)
    for batch_index, (inputs, targets) in enumerate(batches):
        valid = max(0, min(inputs.size(0), num_valid - seen))
        seen += inputs.size(0)
        inputs, targets = inputs.to(ctx.device, non_blocking=True), targets.to(ctx.device, non_blocking=True)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        for index, model in enumerate(models.values()):
            with autocast():
                output = model(inputs)
            if isinstance(output, (tuple, list)):
                output = output[0]
            if valid == 0:
                continue
            output, scored = output[:valid].float(), targets[:valid]
            hits = output.topk(min(5, output.size(-1)), dim=-1).indices == scored[:, None]
            sums[index] += torch.stack([
                torch.nn.functional.cross_entropy(output, scored, reduction="sum"),
                hits[:, 0].sum(), hits.any(-1).sum()]).double()
        if batch_index == 0:  # the models are compiled by now: their idle compile workers slow the host
            release_compile_workers()
    *sums, count = ctx.all_reduce_sum(torch.cat([sums.flatten(), sums.new_tensor([min(seen, num_valid)])])).tolist()
    count = max(count, 1)
    return {name: {"loss": sums[3 * i] / count, "top1": 100.0 * sums[3 * i + 1] / count,
                   "top5": 100.0 * sums[3 * i + 2] / count} for i, name in enumerate(models)}
