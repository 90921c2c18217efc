"""Training throughput of each ImageNet recipe on one GPU: the trainer's own step.

For each config (default: the six ImageNet recipes in configs/), `train_one_epoch` runs on one
resident random batch (B, 3, 224, 224) with 1000 classes: mixup/cutmix on the GPU, bf16
autocast forward and backward, AdamW with timm's weight-decay groups, the EMA update and the
per-update LR step. Data loading is not included (a real run needs a loader that keeps up).
Reported per recipe: images/s, ms per update, peak memory, and the time of one ImageNet-1k
epoch (1,281,167 images) on this GPU and, assuming linear scaling, on 8.

    python benchmarks/train_throughput.py [--configs configs/hydra_vit_base.yaml ...] [--batch 128]
        [--steps 20] [--warmup 5] [--torchcompile] [--device cuda] [--label NAME] [--out FILE] [--options ...]

`--options` are train_imagenet.py options applied on top of each config (`--torchcompile-mode
reduce-overhead` with `--torchcompile` compiles as the trainer does, CUDA graphs included);
`--label` names the record of a single config (default: the config's file stem).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from timm.data import Mixup
from timm.utils import ModelEmaV3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import emit, env_header  # noqa: E402

import hydra_vision  # noqa: E402,F401  (registers hydra_vit_*)
from hydra_vision.training.config import parse_args  # noqa: E402
from hydra_vision.training.data import mixup_args  # noqa: E402
from hydra_vision.training.distributed import DistContext  # noqa: E402
from hydra_vision.training.loops import TrainParts, train_one_epoch  # noqa: E402
from hydra_vision.training.loss import create_train_loss  # noqa: E402
from hydra_vision.training.model import create_training_model  # noqa: E402
from hydra_vision.training.optim import create_optimizer, create_scheduler, resolve_lr  # noqa: E402
from hydra_vision.training.precision import resolve_amp  # noqa: E402
from hydra_vision.training.signals import StopRequest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("hydra_vit_base", "vit_base_patch16_224", "hydra_vit_small", "deit_small_patch16_224",
           "hydra_vit_tiny", "deit_tiny_patch16_224")
IMAGENET_TRAIN = 1_281_167


class ResidentBatches:
    """A loader that yields the same device batch `steps` times."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, steps: int) -> None:
        self.inputs, self.targets, self.steps = inputs, targets, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            yield self.inputs, self.targets


def measure(config: Path, batch: int, steps: int, warmup: int, compile_backend: str | None,
            device: torch.device, extra_options: list[str], label: str | None = None) -> dict:
    """Images/s of the recipe's training step at `batch` per GPU (see the module docstring)."""
    extra = (["--torchcompile", compile_backend] if compile_backend else []) + extra_options
    args = parse_args(["-c", str(config), "--data-dir", "unused", "-b", str(batch), "--log-interval", "1000000",
                       "--num-classes", "1000", *extra])
    ctx = DistContext(device=device)
    autocast, scaler = resolve_amp(args, device)
    resolve_lr(args, world_size=8)
    model = create_training_model(args, num_classes=1000).to(device)
    optimizer = create_optimizer(args, model)
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None
    mix = mixup_args(args, 1000)
    scheduler, _ = create_scheduler(args, optimizer, updates_per_epoch=steps)
    compiled = torch.compile(model, backend=args.torchcompile, mode=args.torchcompile_mode) if args.torchcompile \
        else model
    parts = TrainParts(model=compiled,
                       raw_model=model, optimizer=optimizer, scheduler=scheduler,
                       loss_fn=create_train_loss(args, mix is not None).to(device), autocast=autocast, ctx=ctx, ema=ema,
                       scaler=scaler, mixup_fn=Mixup(**mix) if mix else None)
    inputs = torch.randn(batch, 3, args.img_size, args.img_size, device=device)
    targets = torch.randint(0, 1000, (batch,), device=device)
    stop = StopRequest()
    cuda = device.type == "cuda"
    train_one_epoch(parts, ResidentBatches(inputs, targets, warmup), 0, args, stop, steps + warmup)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_one_epoch(parts, ResidentBatches(inputs, targets, steps), 0, args, stop, steps + warmup)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    rate = batch * steps / elapsed
    epoch_min = IMAGENET_TRAIN / rate / 60
    return {
        "kind": "train_step", "config": label or config.stem, "model": args.model, "img_size": args.img_size,
        "batch": batch, "amp": args.amp_dtype if args.amp else "fp32", "compile": args.torchcompile,
        "compile_mode": args.torchcompile_mode,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "ms_per_update": round(1000 * elapsed / steps, 2), "images_per_s": round(rate, 1),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "imagenet_epoch_min_1gpu": round(epoch_min, 2), "imagenet_epoch_min_8gpu_linear": round(epoch_min / 8, 2),
        "imagenet_300ep_h_8gpu_linear": round(300 * epoch_min / 8 / 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=Path, default=[REPO / "configs" / f"{r}.yaml" for r in RECIPES])
    parser.add_argument("--batch", type=int, default=128, help="per-GPU batch (the recipes' value)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--torchcompile", nargs="?", const="inductor", default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--label", default=None, help="the record's name (one config only; default: its stem)")
    parser.add_argument("--options", nargs=argparse.REMAINDER, default=[], help="more train_imagenet.py options")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.label and len(args.configs) != 1:
        parser.error("--label names one config's record: give a single --configs file")
    stream = args.out.open("a") if args.out else None
    emit(env_header(), stream)
    for config in args.configs:
        try:
            emit(measure(config, args.batch, args.steps, args.warmup, args.torchcompile, torch.device(args.device),
                         args.options, args.label), stream)
        except Exception as e:  # one failing recipe (out of memory, kernel error) must not hide the others
            emit({"kind": "train_step", "config": args.label or config.stem, "error": f"{type(e).__name__}: {e}"[:500]},
                 stream)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
