"""Training options with timm train.py's names, read from a YAML file and the command line.

`-c FILE` gives a flat YAML mapping whose keys are the options' `dest` names (as in timm's
train.py: `batch_size`, `model_ema_decay`, ...); the command line overrides the file. Unlike
timm, an unknown key is an error, and string values are converted with the option's type (so
`lr: 1e-3`, which YAML reads as a string, becomes a float). A key of timm train.py's that this
trainer does not implement (`TIMM_ONLY_OPTIONS`, e.g. `jsd_loss`, `tta`) is accepted when it is off
(null, false, 0, empty), so timm's own `args.yaml` of a run loads, and is an error otherwise.
Defaults equal timm's, except:
`--model` hydra_vit_tiny, `--amp` on for CUDA (bfloat16) unless `--no-amp`, `--device` the
GPU when there is one.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from timm.utils import ParseKwargs

__all__ = ["build_parser", "parse_args", "load_config_file", "config_to_yaml", "TIMM_ONLY_OPTIONS"]

# timm train.py options (dest names) that this trainer does not implement; "off" values of theirs
# (`_is_off`) are dropped from a config file, any other value is refused.
TIMM_ONLY_OPTIONS = frozenset({
    "amp_impl", "aug_splits", "bce_pos_weight", "bce_sum", "bn_eps", "bn_momentum", "color_jitter_prob",
    "dataset_trust_remote_code", "device_modules", "drop_connect", "epoch_repeats", "fast_norm", "fuser",
    "gaussian_blur_prob", "grayscale_prob", "head_init_bias", "head_init_scale", "input_img_mode", "input_key",
    "jsd_loss", "layer_decay_min_scale", "layer_decay_no_opt_scale", "model_dtype",
    "pretrained_path", "recovery_interval", "save_images", "split_bn", "start_epoch", "target_key",
    "torchscript", "train_crop_mode", "train_num_samples", "tta", "use_multi_epochs_loader", "val_num_samples",
    "wandb_resume_id", "wandb_tags",
})


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Dataset")
    parser.add_argument("data", nargs="?", metavar="DIR", help="dataset root (same as --data-dir)")
    group.add_argument("--data-dir", metavar="DIR", help="dataset root: ImageFolder with train/ and val/ splits")
    group.add_argument("--dataset", metavar="NAME", default="", help='timm dataset "<type>/<name>"; empty: folder')
    group.add_argument("--train-split", metavar="NAME", default="train")
    group.add_argument("--val-split", metavar="NAME", default="validation", help="also finds val/, valid/, eval/")
    group.add_argument("--dataset-download", action="store_true", default=False)
    group.add_argument("--class-map", default="", metavar="FILENAME", help="class to index mapping file")


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Model")
    group.add_argument("--model", default="hydra_vit_tiny", metavar="MODEL", help="timm model name")
    group.add_argument("--pretrained", action="store_true", default=False)
    group.add_argument("--initial-checkpoint", default="", metavar="PATH", help="weights to start from")
    group.add_argument("--resume", default="", metavar="PATH", help="continue the run saved in this checkpoint")
    group.add_argument("--no-resume-opt", action="store_true", default=False, help="resume weights only")
    group.add_argument("--num-classes", type=int, default=None, metavar="N", help="default: the dataset's")
    group.add_argument("--gp", default=None, metavar="POOL", help="global pool type")
    group.add_argument("--img-size", type=int, default=None, metavar="N", help="data size (model: --model-kwargs)")
    group.add_argument("--in-chans", type=int, default=None, metavar="N")
    group.add_argument("--input-size", default=None, nargs=3, type=int, metavar="N", help="C H W")
    group.add_argument("--crop-pct", default=None, type=float, metavar="N", help="eval center crop fraction")
    group.add_argument("--mean", type=float, nargs="+", default=None, metavar="MEAN")
    group.add_argument("--std", type=float, nargs="+", default=None, metavar="STD")
    group.add_argument("--interpolation", default="", metavar="NAME")
    group.add_argument("-b", "--batch-size", type=int, default=128, metavar="N", help="per-process batch size")
    group.add_argument("-vb", "--validation-batch-size", type=int, default=None, metavar="N")
    group.add_argument("--channels-last", action="store_true", default=False)
    group.add_argument("--grad-accum-steps", type=int, default=1, metavar="N")
    group.add_argument("--grad-checkpointing", action="store_true", default=False)
    group.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs, metavar="KEY=VALUE")
    group.add_argument("--torchcompile", nargs="?", type=str, default=None, const="inductor", metavar="BACKEND")
    group.add_argument("--torchcompile-mode", type=str, default=None, metavar="MODE")


def _device_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Device")
    group.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    group.add_argument("--amp", action="store_true", default=None, help="autocast (default: on for CUDA)")
    group.add_argument("--no-amp", action="store_false", dest="amp", default=None, help="train in float32")
    group.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    group.add_argument("--no-ddp-bb", action="store_true", default=False, help="DDP: do not broadcast buffers")
    group.add_argument("--synchronize-step", action="store_true", default=False)
    group.add_argument("--sync-bn", action="store_true", default=False)
    group.add_argument("--dist-bn", type=str, default="reduce", help='"broadcast", "reduce" or ""')
    group.add_argument("--local_rank", default=0, type=int, help=argparse.SUPPRESS)


def _optimizer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Optimizer")
    group.add_argument("--opt", default="sgd", metavar="OPTIMIZER")
    group.add_argument("--opt-eps", default=None, type=float, metavar="EPSILON")
    group.add_argument("--opt-betas", default=None, type=float, nargs="+", metavar="BETA")
    group.add_argument("--momentum", type=float, default=0.9, metavar="M")
    group.add_argument("--weight-decay", type=float, default=2e-5)
    group.add_argument("--clip-grad", type=float, default=None, metavar="NORM")
    group.add_argument("--clip-mode", type=str, default="norm", choices=("norm", "value", "agc"))
    group.add_argument("--layer-decay", type=float, default=None)
    group.add_argument("--opt-kwargs", nargs="*", default={}, action=ParseKwargs, metavar="KEY=VALUE")


def _schedule_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Learning rate schedule")
    group.add_argument("--sched", type=str, default="cosine", metavar="SCHEDULER")
    group.add_argument("--sched-on-updates", action="store_true", default=False)
    group.add_argument("--lr", type=float, default=None, metavar="LR", help="overrides --lr-base")
    group.add_argument("--lr-base", type=float, default=0.1, metavar="LR",
                       help="lr = lr_base * global_batch / lr_base_size (scaled as --lr-base-scale)")
    group.add_argument("--lr-base-size", type=int, default=256, metavar="DIV")
    group.add_argument("--lr-base-scale", type=str, default="", metavar="SCALE", help='"linear" or "sqrt"')
    group.add_argument("--lr-noise", type=float, nargs="+", default=None, metavar="pct, pct")
    group.add_argument("--lr-noise-pct", type=float, default=0.67, metavar="PERCENT")
    group.add_argument("--lr-noise-std", type=float, default=1.0, metavar="STDDEV")
    group.add_argument("--lr-cycle-mul", type=float, default=1.0, metavar="MULT")
    group.add_argument("--lr-cycle-decay", type=float, default=0.5, metavar="MULT")
    group.add_argument("--lr-cycle-limit", type=int, default=1, metavar="N")
    group.add_argument("--lr-k-decay", type=float, default=1.0)
    group.add_argument("--warmup-lr", type=float, default=1e-5, metavar="LR")
    group.add_argument("--min-lr", type=float, default=0, metavar="LR")
    group.add_argument("--epochs", type=int, default=300, metavar="N")
    group.add_argument("--decay-milestones", default=[90, 180, 270], type=int, nargs="+", metavar="MILESTONES")
    group.add_argument("--decay-epochs", type=float, default=90, metavar="N")
    group.add_argument("--warmup-epochs", type=int, default=5, metavar="N")
    group.add_argument("--warmup-prefix", action="store_true", default=False)
    group.add_argument("--cooldown-epochs", type=int, default=0, metavar="N")
    group.add_argument("--patience-epochs", type=int, default=10, metavar="N")
    group.add_argument("--decay-rate", "--dr", type=float, default=0.1, metavar="RATE")


def _augmentation_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Augmentation and regularization")
    group.add_argument("--no-aug", action="store_true", default=False)
    group.add_argument("--scale", type=float, nargs="+", default=[0.08, 1.0], metavar="PCT")
    group.add_argument("--ratio", type=float, nargs="+", default=[3.0 / 4.0, 4.0 / 3.0], metavar="RATIO")
    group.add_argument("--hflip", type=float, default=0.5)
    group.add_argument("--vflip", type=float, default=0.0)
    group.add_argument("--color-jitter", type=float, default=0.4, metavar="PCT")
    group.add_argument("--aa", type=str, default=None, metavar="NAME", help="e.g. rand-m9-mstd0.5-inc1")
    group.add_argument("--aug-repeats", type=float, default=0, help="repeated augmentation (distributed)")
    group.add_argument("--bce-loss", action="store_true", default=False)
    group.add_argument("--bce-target-thresh", type=float, default=None)
    group.add_argument("--reprob", type=float, default=0.0, metavar="PCT", help="random erasing probability")
    group.add_argument("--remode", type=str, default="pixel")
    group.add_argument("--recount", type=int, default=1)
    group.add_argument("--resplit", action="store_true", default=False)
    group.add_argument("--mixup", type=float, default=0.0)
    group.add_argument("--cutmix", type=float, default=0.0)
    group.add_argument("--cutmix-minmax", type=float, nargs="+", default=None)
    group.add_argument("--mixup-prob", type=float, default=1.0)
    group.add_argument("--mixup-switch-prob", type=float, default=0.5)
    group.add_argument("--mixup-mode", type=str, default="batch", choices=("batch", "pair", "elem"))
    group.add_argument("--mixup-off-epoch", default=0, type=int, metavar="N")
    group.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    group.add_argument("--train-interpolation", type=str, default="random")
    group.add_argument("--drop", type=float, default=0.0, metavar="PCT")
    group.add_argument("--drop-path", type=float, default=None, metavar="PCT")
    group.add_argument("--drop-block", type=float, default=None, metavar="PCT")


def _ema_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Model EMA")
    group.add_argument("--model-ema", action="store_true", default=False)
    group.add_argument("--model-ema-force-cpu", action="store_true", default=False, help="keep EMA on CPU; no eval")
    group.add_argument("--model-ema-decay", type=float, default=0.9998)
    group.add_argument("--model-ema-warmup", action="store_true", default=False)


def _misc_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Miscellaneous")
    group.add_argument("--seed", type=int, default=42, metavar="S")
    group.add_argument("--worker-seeding", type=str, default="all", choices=("all", "part"))
    group.add_argument("--log-interval", type=int, default=50, metavar="N", help="optimizer steps between logs")
    group.add_argument("--checkpoint-hist", type=int, default=10, metavar="N")
    group.add_argument("-j", "--workers", type=int, default=4, metavar="N")
    group.add_argument("--pin-mem", action="store_true", default=False)
    group.add_argument("--no-prefetcher", action="store_true", default=False)
    group.add_argument("--output", default="", metavar="PATH", help="default: ./output/train")
    group.add_argument("--experiment", default="", metavar="NAME", help="run folder name under --output")
    group.add_argument("--eval-metric", default="top1", choices=("top1", "top5", "loss"))
    group.add_argument("--log-wandb", action="store_true", default=False)
    group.add_argument("--wandb-project", default=None, metavar="NAME")
    group.add_argument("--log-tensorboard", action="store_true", default=False)


def build_parser() -> argparse.ArgumentParser:
    """The training parser: timm train.py's option names and defaults (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description="Train an image classifier with timm's recipe (timm train.py options).",
    )
    parser.add_argument("-c", "--config", default="", metavar="FILE", help="YAML file of option defaults")
    for add in (_dataset_options, _model_options, _device_options, _optimizer_options, _schedule_options,
                _augmentation_options, _ema_options, _misc_options):
        add(parser)
    return parser


def _convert(action: argparse.Action, key: str, value: Any) -> Any:
    """Check one YAML value against its option and convert strings with the option's type."""
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise TypeError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(action, ParseKwargs):
        if not isinstance(value, dict):
            raise TypeError(f"config key {key!r} must be a mapping, got {value!r}")
        return value
    convert = action.type or (lambda v: v)
    try:
        if action.nargs in ("+", "*") or isinstance(action.nargs, int):
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"config key {key!r} must be a list, got {value!r}")
            value = [convert(v) for v in value]
        elif isinstance(value, (list, tuple, dict)):
            raise TypeError(f"config key {key!r} takes one value, got {value!r}")
        else:
            value = convert(value)
    except ValueError as e:
        raise ValueError(f"config key {key!r}: cannot read {value!r} ({e})") from None
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"config key {key!r} must be one of {list(action.choices)}, got {value!r}")
    return value


def load_config_file(path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a flat YAML mapping of option `dest` names, checked and converted against `parser`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open() as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of option names to values")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    unknown = sorted(set(map(str, raw)) - set(actions) - TIMM_ONLY_OPTIONS)
    if unknown:
        raise ValueError(f"unknown key(s) in {path}: {', '.join(unknown)} (keys are option dest names, "
                         f"e.g. batch_size for --batch-size)")
    unsupported = [f"{key}={value!r}" for key, value in raw.items()
                   if key in TIMM_ONLY_OPTIONS and not _is_off(key, value)]
    if unsupported:
        raise ValueError(f"{path} turns on timm train.py option(s) that train_imagenet.py does not implement: "
                         f"{', '.join(unsupported)} (remove them or set them to null/false/0)")
    return {key: _convert(actions[key], key, value) for key, value in raw.items() if key in actions}


def _is_off(key: str, value: Any) -> bool:
    """Whether a timm-only option's value leaves timm's behaviour unchanged (the option unused)."""
    if key == "amp_impl":
        return value in (None, "native")  # torch.autocast: what this trainer uses
    return value in (None, False, 0, "") or value == []


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse `argv`: defaults, then the `-c` YAML file, then the command line."""
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    if first.config:
        parser.set_defaults(**load_config_file(first.config, parser))
    args = parser.parse_args(argv)
    if args.data and not args.data_dir:
        args.data_dir = args.data
    for name in ("batch_size", "epochs", "log_interval", "checkpoint_hist", "grad_accum_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_yaml(args: argparse.Namespace) -> str:
    """The resolved options as YAML that `-c` reads back (without `config` and the positional `data`)."""
    values = {k: _plain(v) for k, v in vars(args).items() if k not in ("config", "data")}
    return yaml.safe_dump(values, default_flow_style=False, sort_keys=True)
