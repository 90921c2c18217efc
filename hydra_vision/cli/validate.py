"""Evaluate a checkpoint (model or EMA weights) on an ImageFolder split: top-1/top-5, loss, throughput, JSON."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_data_config
from timm.utils import ParseKwargs, setup_default_logging

from hydra_vision.checkpoint_io import load_checkpoint_file, load_model_weights
from hydra_vision.training.data import create_eval_loader, create_image_dataset
from hydra_vision.training.distributed import DistContext
from hydra_vision.training.loops import evaluate
from hydra_vision.training.model import check_model_name
from hydra_vision.training.precision import resolve_amp

_DATA_KEYS = ("img_size", "input_size", "crop_pct", "mean", "std", "interpolation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """timm validate.py's option names; model, kwargs, classes and data sizes default to the checkpoint's."""
    parser.add_argument("data", nargs="?", metavar="DIR", help="dataset root (same as --data-dir)")
    parser.add_argument("--data-dir", metavar="DIR")
    parser.add_argument("--dataset", default="", metavar="NAME", help='timm dataset "<type>/<name>"; empty: folder')
    parser.add_argument("--split", default="validation", metavar="NAME", help="also finds val/, valid/, eval/")
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help=".pth.tar checkpoint or .safetensors")
    parser.add_argument("--use-ema", action="store_true", default=False, help="evaluate the EMA weights")
    parser.add_argument("--model", default=None, metavar="MODEL", help="default: the checkpoint's")
    parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs, metavar="KEY=VALUE")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N")
    parser.add_argument("--img-size", type=int, default=None, metavar="N")
    parser.add_argument("--input-size", default=None, nargs=3, type=int, metavar="N", help="C H W")
    parser.add_argument("--crop-pct", default=None, type=float)
    parser.add_argument("--mean", type=float, nargs="+", default=None)
    parser.add_argument("--std", type=float, nargs="+", default=None)
    parser.add_argument("--interpolation", default=None, metavar="NAME")
    parser.add_argument("-b", "--batch-size", type=int, default=256, metavar="N")
    parser.add_argument("-j", "--workers", type=int, default=4, metavar="N")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--amp", action="store_true", default=None, help="autocast (default: on for CUDA)")
    parser.add_argument("--no-amp", action="store_false", dest="amp", default=None)
    parser.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--channels-last", action="store_true", default=False)
    parser.add_argument("--torchcompile", nargs="?", type=str, default=None, const="inductor", metavar="BACKEND")
    parser.add_argument("--results-file", default="", metavar="PATH", help="write the results as JSON here")


def _saved_options(path: str) -> tuple[dict[str, Any], list[str] | None]:
    """The training options and class names stored in a checkpoint ({} and None for .safetensors)."""
    if path.endswith(".safetensors"):
        return {}, None
    checkpoint = load_checkpoint_file(path)
    return checkpoint.get("args") or {}, checkpoint.get("class_names")


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate `args.checkpoint` on `args.split` of the dataset; returns the results dict."""
    data_dir = args.data_dir or args.data
    if not data_dir:
        raise ValueError("no dataset given: pass its root as DIR or --data-dir DIR")
    saved, class_names = _saved_options(args.checkpoint)
    model_name = args.model or saved.get("model")
    if not model_name:
        raise ValueError(f"{args.checkpoint} does not name its model: pass --model")
    check_model_name(model_name)
    class_map = {name: i for i, name in enumerate(class_names)} if class_names else ""
    dataset = create_image_dataset(args.dataset, data_dir, args.split, False, class_map)
    num_classes = args.num_classes or saved.get("num_classes") or (len(class_names) if class_names else None)
    model_kwargs = {**(saved.get("model_kwargs") or {}), **args.model_kwargs}
    model = timm.create_model(model_name, num_classes=num_classes, **model_kwargs) if num_classes else \
        timm.create_model(model_name, **model_kwargs)
    load_model_weights(model, args.checkpoint, use_ema=args.use_ema, model_name=model_name)

    ctx = DistContext(device=torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    autocast, _ = resolve_amp(args, ctx.device)
    data_options = {k: getattr(args, k) if getattr(args, k) is not None else saved.get(k) for k in _DATA_KEYS}
    data_config = resolve_data_config(data_options, model=model)
    model.to(ctx.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.torchcompile:
        model = torch.compile(model, backend=args.torchcompile)
    loader = create_eval_loader(dataset, data_config, args.batch_size, args.workers, ctx.device, False,
                                use_prefetcher=ctx.device.type == "cuda")
    start = time.perf_counter()
    metrics = evaluate({"model": model}, loader, ctx, autocast, args.channels_last)["model"]
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "model": model_name,
        "checkpoint": str(args.checkpoint),
        "weights": "ema" if args.use_ema else "model",
        "split": args.split,
        "num_samples": len(dataset),
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "loss": metrics["loss"],
        "samples_per_s": len(dataset) / elapsed,
        "skipped_images": getattr(dataset, "take_skipped", lambda: 0)(),
        "input_size": list(data_config["input_size"]),
        "device": str(ctx.device),
        "amp": bool(args.amp),
    }


def run(args: argparse.Namespace) -> int:
    setup_default_logging()
    try:
        results = validate(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        logging.getLogger("validate").error(str(e))
        return 2
    text = json.dumps(results, indent=2)
    print(text)
    if args.results_file:
        Path(args.results_file).write_text(text + "\n")
    return 0
