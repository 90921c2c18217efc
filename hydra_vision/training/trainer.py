"""One training run: timm's train.py recipe put together from the pieces of this package.

Per epoch: train, evaluate the model and its EMA, step the schedule, append summary.csv and
redraw curves.png, then save `last.pth.tar` (and `model_best.pth.tar`, numbered history)
atomically. A checkpoint holds everything the next epoch depends on, RNG states of every rank
included, so `--resume` continues exactly: the resumed run ends with the metrics of an
uninterrupted one. A stop inside an epoch (SIGTERM/SIGINT) writes `interrupted.pth.tar`, the same
state at the last update plus the epoch's progress and its starting RNG states: `--resume` of it
continues that epoch after the batches already trained (`resume_sampler`); `--resume last.pth.tar`
restarts the epoch instead.
Evaluation runs the bare model eagerly (no DDP wrapper, no second torch.compile for eval mode).
"""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch
from timm.data import resolve_data_config
from timm.layers import convert_sync_batchnorm
from timm.models import clean_state_dict, safe_model_name
from timm.utils import ModelEmaV3, distribute_bn, get_outdir, random_seed
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint_io import load_checkpoint_file, state_dict_mismatch
from .checkpoint import AtomicCheckpointSaver, atomic_save, atomic_write_text, export_safetensors
from .config import config_to_yaml
from .data import (class_names_of, create_eval_loader, create_image_dataset, create_train_loader,
                   ending_new_workers_on_error, mixup_args)
from .distributed import DistContext, setup_distributed, teardown_distributed
from .loggers import ScalarLogger
from .loss import create_train_loss
from .loops import EpochProgress, TrainParts, evaluate, mean_lr, train_one_epoch
from .metrics import RunRecords, plot_curves
from .model import create_training_model
from .optim import create_optimizer, create_scheduler, resolve_lr
from .precision import resolve_amp
from .resume_sampler import SkippableSampler, skippable_sampler
from .rng import capture_rng_state, restore_rng_state
from .signals import StopRequest

__all__ = ["train"]

_logger = logging.getLogger(__name__)

_RESUME_IGNORED = {"resume", "output", "experiment", "workers", "log_interval", "log_wandb", "log_tensorboard",
                   "wandb_project", "pin_mem", "device", "local_rank", "config", "data", "data_dir"}


def train(args: argparse.Namespace) -> int:
    """Run the training described by `args` (see `config.build_parser`); returns the exit code
    (0, or 128 + signal number after a SIGTERM/SIGINT stop)."""
    ctx = setup_distributed(args.device)
    try:
        with ending_new_workers_on_error():
            return _train(args, ctx)
    finally:
        teardown_distributed(ctx)


def _num_classes(args: argparse.Namespace, class_names: list[str] | None) -> int:
    if args.num_classes is None:
        if class_names is None:
            raise ValueError(f"--num-classes is needed for dataset {args.dataset!r}")
        return len(class_names)
    if class_names is not None and len(class_names) > args.num_classes:
        raise ValueError(f"the train split has {len(class_names)} classes but --num-classes is {args.num_classes}")
    return args.num_classes


def _sync_img_size(args: argparse.Namespace) -> None:
    """Use `--model-kwargs img_size=N` as the data size when no data size is given."""
    size = args.model_kwargs.get("img_size")
    if size is None or args.img_size is not None or args.input_size is not None:
        return
    if isinstance(size, int):
        args.img_size = size
    else:
        args.input_size = [args.in_chans or 3, *size]


def _run_dir(args: argparse.Namespace, img_size: int) -> Path:
    if args.resume and not args.output and not args.experiment:
        return Path(args.resume).resolve().parent
    name = args.experiment or "-".join(
        [datetime.now().strftime("%Y%m%d-%H%M%S"), safe_model_name(args.model), str(img_size)])
    return Path(get_outdir(args.output or "./output/train", name))


def _load_resume(args: argparse.Namespace, parts: TrainParts, class_names: list[str] | None) -> dict[str, Any]:
    """Restore weights, EMA, optimizer, scaler and schedule from `--resume`; returns the checkpoint."""
    checkpoint = load_checkpoint_file(args.resume)
    if checkpoint.get("interrupted") and "progress" not in checkpoint:
        raise ValueError(f"{args.resume} is a mid-epoch snapshot of an older version, without the epoch's "
                         f"progress; resume from last.pth.tar in the same folder (it restarts that epoch)")
    if "state_dict" not in checkpoint or "epoch" not in checkpoint:
        raise ValueError(f"{args.resume} is not a training checkpoint (no state_dict/epoch)")
    if checkpoint.get("arch", args.model) != args.model:
        raise ValueError(f"{args.resume} was trained with model {checkpoint['arch']!r}, not {args.model!r}")
    if class_names is not None and checkpoint.get("class_names") not in (None, class_names):
        raise ValueError(f"{args.resume} was trained on other classes than the ones in {args.data_dir}")
    saved = checkpoint.get("args") or {}
    changed = sorted(k for k, v in vars(args).items() if k in saved and k not in _RESUME_IGNORED and saved[k] != v)
    if changed:
        _logger.warning(f"resuming with options that differ from the checkpoint's: {', '.join(changed)}")
    weights = clean_state_dict(checkpoint["state_dict"])
    problems = state_dict_mismatch(weights, parts.raw_model)
    if problems:
        raise ValueError(f"{args.resume} does not fit model {args.model}: " + "; ".join(problems))
    parts.raw_model.load_state_dict(weights)
    if parts.ema is not None:
        ema_weights = checkpoint.get("state_dict_ema")
        if ema_weights is None:
            _logger.warning(f"{args.resume} holds no EMA weights: the EMA starts from the resumed weights")
        parts.ema.module.load_state_dict(weights if ema_weights is None else clean_state_dict(ema_weights))
    if not args.no_resume_opt:
        if "optimizer" not in checkpoint:
            raise ValueError(f"{args.resume} holds no optimizer state; add --no-resume-opt to start a fresh one")
        if saved.get("opt", args.opt) != args.opt:
            raise ValueError(f"{args.resume} was trained with --opt {saved['opt']}, not {args.opt}; use the same "
                             f"optimizer, or add --no-resume-opt to start a fresh {args.opt} state")
        parts.optimizer.load_state_dict(checkpoint["optimizer"])
        if parts.scaler is not None and parts.scaler.state_dict_key in checkpoint:
            parts.scaler.load_state_dict(checkpoint[parts.scaler.state_dict_key])
        if args.sched == "plateau" and "scheduler" in checkpoint:
            # the other schedules are functions of the epoch/update count (set below), so a resumed
            # run may change --epochs as with timm's train.py; plateau's depends on metric history
            parts.scheduler.load_state_dict(checkpoint["scheduler"])
            if "plateau" in checkpoint:  # torch's ReduceLROnPlateau: the patience and cooldown counters
                parts.scheduler.lr_scheduler.load_state_dict(checkpoint["plateau"])
    return checkpoint


def _checkpoint_state(args: argparse.Namespace, parts: TrainParts, class_names: list[str] | None, step: int,
                      rng: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {
        "arch": args.model,
        "args": dict(vars(args)),
        "state_dict": parts.raw_model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "step": step,
        "rng": rng,
        "class_names": class_names,
    }
    if parts.ema is not None:
        state["state_dict_ema"] = parts.ema.module.state_dict()
    if parts.scheduler is not None:
        state["scheduler"] = parts.scheduler.state_dict()
        if args.sched == "plateau":  # timm's state keeps only `best` and the epoch, not torch's counters
            state["plateau"] = parts.scheduler.lr_scheduler.state_dict()
    if parts.scaler is not None:
        state[parts.scaler.state_dict_key] = parts.scaler.state_dict()
    return state


def _restore_rng(checkpoint: dict[str, Any], ctx: DistContext, sampler: SkippableSampler | None,
                 skip: int | None) -> None:
    """Set this process's generators to the checkpoint's: those of the epoch's start, and for a
    resumed epoch (`skip` train indices done on this process) those of the stop once the
    sampler has left out the done indices."""
    states = checkpoint.get("rng_epoch_start") or checkpoint.get("rng")
    if not states:
        return
    matching = len(states) == ctx.world_size
    if not matching:
        _logger.warning(f"checkpoint RNG states are for {len(states)} processes, not "
                        f"{ctx.world_size}: data order and augmentation will differ from the original run")
    else:
        restore_rng_state(states[ctx.rank], ctx.device)
    if skip:  # only with matching states: a resume on another process count restarts the epoch
        sampler.skip_next(skip, partial(restore_rng_state, checkpoint["rng"][ctx.rank], ctx.device))


def _export_best(run_dir: Path, arch: str) -> None:
    """Write the best checkpoint's weights (and EMA weights) as .safetensors files."""
    best = run_dir / "model_best.pth.tar"
    if not best.exists():
        return
    checkpoint = load_checkpoint_file(best)
    export_safetensors(checkpoint["state_dict"], run_dir / "model_best.safetensors", arch)
    if checkpoint.get("state_dict_ema") is not None:
        export_safetensors(checkpoint["state_dict_ema"], run_dir / "model_best_ema.safetensors", arch)


def _train(args: argparse.Namespace, ctx: DistContext) -> int:
    if not args.data_dir:
        raise ValueError("no dataset given: pass its root as DIR or --data-dir DIR")
    if ctx.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    args.device = ctx.device.type
    args.grad_accum_steps = max(1, args.grad_accum_steps)
    autocast, scaler = resolve_amp(args, ctx.device)
    random_seed(args.seed, ctx.rank)

    dataset_args = dict(download=args.dataset_download, batch_size=args.batch_size, seed=args.seed)
    dataset_train = create_image_dataset(args.dataset, args.data_dir, args.train_split, True, args.class_map,
                                         **dataset_args)
    class_names = class_names_of(dataset_train)
    class_map = {name: i for i, name in enumerate(class_names)} if class_names else args.class_map
    dataset_eval = create_image_dataset(args.dataset, args.data_dir, args.val_split, False, class_map, **dataset_args)
    args.num_classes = _num_classes(args, class_names)
    _sync_img_size(args)

    model = create_training_model(args, args.num_classes)
    data_config = resolve_data_config(vars(args), model=model, verbose=ctx.is_primary)
    model.to(ctx.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if ctx.distributed and args.sync_bn:
        model = convert_sync_batchnorm(model)
    if ctx.is_primary:
        _logger.info(f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
                     f"{args.num_classes} classes, {ctx.world_size} process(es) on {ctx.device.type}")
    resolve_lr(args, ctx.world_size)
    optimizer = create_optimizer(args, model)
    ema = None
    if args.model_ema:
        ema = ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup,
                         device=torch.device("cpu") if args.model_ema_force_cpu else None)

    use_prefetcher = not args.no_prefetcher and ctx.device.type == "cuda"
    loader_train, mixup_fn = create_train_loader(args, dataset_train, data_config, args.num_classes, ctx.device,
                                                 ctx.distributed, use_prefetcher)
    loader_eval = create_eval_loader(dataset_eval, data_config, args.validation_batch_size or args.batch_size,
                                     args.workers, ctx.device, ctx.distributed, use_prefetcher, args.pin_mem)
    updates_per_epoch = math.ceil(len(loader_train) / args.grad_accum_steps)
    scheduler, num_epochs = create_scheduler(args, optimizer, updates_per_epoch)
    parts = TrainParts(model=model, raw_model=model, optimizer=optimizer, scheduler=scheduler,
                       loss_fn=create_train_loss(args, mixup_args(args, args.num_classes) is not None).to(ctx.device),
                       autocast=autocast, ctx=ctx, ema=ema, scaler=scaler, mixup_fn=mixup_fn)

    sampler = skippable_sampler(loader_train)
    start_epoch, checkpoint, progress, num_updates = 0, None, None, 0
    if args.resume:
        checkpoint = _load_resume(args, parts, class_names)
        start_epoch = checkpoint["epoch"] + 1
        if checkpoint.get("interrupted"):
            start_epoch = checkpoint["epoch"]
            if sampler is None:
                _logger.warning(f"the {args.dataset!r} loader cannot skip batches: epoch {start_epoch} restarts")
            elif len(checkpoint["rng"]) != ctx.world_size:
                _logger.warning(f"{args.resume} stopped with {len(checkpoint['rng'])} processes, not "
                                f"{ctx.world_size}: epoch {start_epoch} restarts")
            else:
                progress = EpochProgress(**checkpoint["progress"])
        num_updates = start_epoch * updates_per_epoch + (progress.updates(args.grad_accum_steps) if progress else 0)
        if args.sched_on_updates:
            scheduler.step_update(num_updates)
        else:
            scheduler.step(start_epoch)
    if ctx.distributed:
        device_ids = [ctx.device] if ctx.device.type == "cuda" else None
        parts.model = DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=not args.no_ddp_bb)
    if args.torchcompile:
        parts.model = torch.compile(parts.model, backend=args.torchcompile, mode=args.torchcompile_mode)

    run_dir = records = saver = None
    scalar_log = None
    rng: list[dict[str, Any]] = []
    if ctx.is_primary:
        run_dir = _run_dir(args, data_config["input_size"][-1])
        atomic_write_text(config_to_yaml(args), run_dir / "args.yaml")
        scalar_log = ScalarLogger(args, run_dir, config=dict(vars(args)))
        records = RunRecords(run_dir, log_wandb=scalar_log.wandb)
        records.trim(start_epoch, num_updates)
        saver = AtomicCheckpointSaver(
            lambda: _checkpoint_state(args, parts, class_names, num_updates, rng), run_dir,
            decreasing=args.eval_metric == "loss", max_history=args.checkpoint_hist)
        if checkpoint is not None and "saver" in checkpoint:
            saver.load_state_dict(checkpoint["saver"])
        _logger.info(f"run folder {run_dir}; epochs {start_epoch}..{num_epochs - 1}, "
                     f"{updates_per_epoch} updates per epoch")

    def log_step(epoch: int, step: int, loss: float, lr: float, rate: float) -> None:
        records.add_step(epoch, step, loss, lr, rate)
        scalar_log.scalars({"train/loss": loss, "train/lr": lr, "train/samples_per_s": rate}, step)

    if checkpoint is not None:
        _restore_rng(checkpoint, ctx, sampler, progress and progress.batches * args.batch_size)

    try:
        with StopRequest() as stop:
            for epoch in range(start_epoch, num_epochs):
                if ctx.distributed and hasattr(loader_train.sampler, "set_epoch"):
                    loader_train.sampler.set_epoch(epoch)
                epoch_start_rng = capture_rng_state(ctx.device)
                train_metrics, progress = train_one_epoch(
                    parts, loader_train, epoch, args, stop, num_epochs * updates_per_epoch,
                    log_step if ctx.is_primary else None, start=progress)
                num_updates = epoch * updates_per_epoch + progress.updates(args.grad_accum_steps)
                if progress.batches < len(loader_train):
                    rng, epoch_rng = ctx.gather(capture_rng_state(ctx.device)), ctx.gather(epoch_start_rng)
                    if ctx.is_primary:
                        state = _checkpoint_state(args, parts, class_names, num_updates, rng)
                        state.update(epoch=epoch, interrupted=True, version=2, progress=asdict(progress),
                                     rng_epoch_start=epoch_rng, saver=saver.state_dict())
                        atomic_save(state, run_dir / "interrupted.pth.tar")
                        _logger.warning(f"stopped in epoch {epoch} after {progress.batches} of {len(loader_train)} "
                                        f"batches: --resume {run_dir / 'interrupted.pth.tar'} continues from there "
                                        f"(--resume {run_dir / 'last.pth.tar'} restarts epoch {epoch})")
                    ctx.barrier()  # every process exits after the file is written (torchrun ends the rest)
                    return stop.exit_code
                progress = None
                skipped = getattr(dataset_train, "take_skipped", lambda: 0)()
                train_metrics["skipped_images"] = ctx.all_reduce_sum(torch.tensor([skipped], device=ctx.device)).item()
                if train_metrics["skipped_images"]:
                    _logger.warning(f"epoch {epoch}: skipped {train_metrics['skipped_images']} unreadable images")
                if ctx.distributed and args.dist_bn in ("broadcast", "reduce"):
                    distribute_bn(model, ctx.world_size, args.dist_bn == "reduce")
                    if ema is not None:  # as timm's train.py: each process's EMA copy scores with the same stats
                        distribute_bn(ema, ctx.world_size, args.dist_bn == "reduce")
                scored = {"model": model}
                if ema is not None and not args.model_ema_force_cpu:
                    scored["ema"] = ema
                scores = evaluate(scored, loader_eval, ctx, autocast, args.channels_last)
                evaluation = dict(scores["model"])
                if "ema" in scores:
                    evaluation.update({f"ema_{k}": v for k, v in scores["ema"].items()})
                latest = scores["ema" if "ema" in scores else "model"][args.eval_metric]
                lr = mean_lr(optimizer)
                scheduler.step(epoch + 1, latest)
                rng = ctx.gather(capture_rng_state(ctx.device))
                if ctx.is_primary:
                    _logger.info(f"epoch {epoch}: train loss {train_metrics['loss']:.4f}, " + ", ".join(
                        f"{k} {v:.3f}" for k, v in evaluation.items()))
                    records.add_epoch(epoch, train_metrics, evaluation, lr)
                    plot_curves(records.summary, run_dir / "curves.png")
                    scalar_log.scalars({f"eval/{k}": v for k, v in evaluation.items()}, num_updates)
                    best, best_epoch = saver.save_checkpoint(epoch, metric=latest)
                    (run_dir / "interrupted.pth.tar").unlink(missing_ok=True)  # older than last.pth.tar now
                    _logger.info(f"saved {run_dir / 'last.pth.tar'}; best {args.eval_metric} {best} "
                                 f"(epoch {best_epoch})")
                if ctx.any(stop.requested):
                    return stop.exit_code
        if ctx.is_primary:
            _export_best(run_dir, args.model)
        return 0
    finally:
        if scalar_log is not None:
            scalar_log.close()
