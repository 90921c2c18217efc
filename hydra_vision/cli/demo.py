"""Train, evaluate and extract features with hydra_vit_tiny on a generated image folder (CPU, ~1 min)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch

from hydra_vision.cli import main as cli_main
from hydra_vision.data.synthetic import write_image_folder
from hydra_vision.training import main as train_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="hydra-vision-demo",
                        help="folder for the data, run, features (default: %(default)s)")
    parser.add_argument("--model", default="hydra_vit_tiny", help="timm model name (default: %(default)s)")
    parser.add_argument("--img-size", type=int, default=64, help="image side; patch 16 gives (side/16)^2 tokens")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)


def _check(code: int, what: str) -> None:
    if code:
        raise SystemExit(f"demo: {what} failed with exit code {code}")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    data, run_dir = out / "data", out / "run"
    size = args.img_size

    start = _step(f"1/5 build {args.model} through timm.create_model and time a forward pass")
    model = timm.create_model(args.model, num_classes=4, img_size=size).eval()
    params = sum(p.numel() for p in model.parameters())
    images = torch.rand(16, 3, size, size)
    with torch.no_grad():
        model(images)
        tick = time.perf_counter()
        logits = model(images)
        seconds = time.perf_counter() - tick
    print(f"   {args.model}: {params / 1e6:.2f}M params, {model.patch_embed.num_patches} tokens per "
          f"{size}x{size} image, logits {tuple(logits.shape)}, inference {16 / seconds:.0f} img/s on the CPU")
    _done(start)

    start = _step(f"2/5 write a generated ImageFolder (4 classes, 32 train + 32 val images each) to {data}")
    write_image_folder(data, classes=4, images_per_class=32, size=size, splits=("train", "val"), seed=0)
    _done(start)

    start = _step(f"3/5 train {args.epochs} epochs with timm's recipe pieces (AdamW, cosine, RandAugment, EMA)")
    _check(train_main([
        "--data-dir", str(data), "--model", args.model, "--model-kwargs", f"img_size={size}", "--img-size", str(size),
        "--batch-size", "16",
        "--epochs", str(args.epochs), "--warmup-epochs", "1", "--lr", "2e-3", "--weight-decay", "0.05",
        "--aa", "rand-m5-mstd0.5", "--smoothing", "0.1", "--model-ema", "--model-ema-decay", "0.8",
        "--workers", "0", "--log-interval", "6", "--seed", "0", "--device", args.device,
        "--output", str(out), "--experiment", "run", "--checkpoint-hist", "1",
    ]), "training")
    _done(start)

    start = _step("4/5 validate the best EMA checkpoint")
    results = run_dir / "val.json"
    _check(cli_main(["validate", str(data), "--split", "val", "--checkpoint", str(run_dir / "model_best.pth.tar"),
                     "--use-ema", "--workers", "0", "--device", args.device, "--results-file", str(results)]),
           "validation")
    _done(start)

    start = _step("5/5 extract pooled embeddings of both splits and run a k-NN classifier on them")
    for split in ("train", "val"):
        _check(cli_main(["extract", str(data / split), "--model", args.model, "--checkpoint",
                         str(run_dir / "model_best.pth.tar"), "--ema", "--img-size", str(size),
                         "--out", str(out / f"{split}.safetensors"), "--workers", "0", "--device", args.device,
                         "--quiet"]), f"extracting {split} features")
    knn = out / "knn.json"
    _check(cli_main(["knn", "--train", str(out / "train.safetensors"), "--val", str(out / "val.safetensors"),
                     "--device", args.device, "--out", str(knn)]), "k-NN")
    _done(start)

    scores, neighbours = json.loads(results.read_text()), json.loads(knn.read_text())
    print(f"\nDone. {args.model} trained on generated images: EMA top-1 {scores['top1']:.1f}% on the val split, "
          f"k-NN top-1 {neighbours['top1']:.1f}% on its embeddings.\nEverything is under {out}: run/summary.csv, "
          "run/curves.png, run/*.pth.tar (+ .safetensors), train/val.safetensors (+ manifests).")
    return 0
