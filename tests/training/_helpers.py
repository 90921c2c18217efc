"""Helpers of the training tests: the options of a tiny run and a subprocess launcher."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "train_imagenet.py"

# hydra_vit_tiny at 2 blocks and 32 px: 15 train images, batch 2 -> 7 updates per epoch.
TINY_MODEL = ["--model", "hydra_vit_tiny", "--model-kwargs", "depth=2", "img_size=32"]


def tiny_run_args(data: Path, output: Path, experiment: str, *extra: str) -> list[str]:
    """Options of a few-second CPU run with the recipe's moving parts (EMA, mixup/cutmix,
    RandAugment, random erasing, drop path, layer decay, warmup + cosine)."""
    return [str(data), *TINY_MODEL, "--epochs", "3", "--warmup-epochs", "1", "-b", "2", "-j", "0",
            "--opt", "adamw", "--lr", "1e-3", "--weight-decay", "0.05", "--layer-decay", "0.75",
            "--model-ema", "--model-ema-decay", "0.9", "--mixup", "0.8", "--cutmix", "1.0",
            "--aa", "rand-m5-mstd0.5", "--reprob", "0.25", "--drop-path", "0.1", "--seed", "3",
            "--log-interval", "1", "--output", str(output), "--experiment", experiment, *extra]


def subprocess_env() -> dict[str, str]:
    """One thread per process, so that separate runs compute bit-identical results."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_training(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train_imagenet.py in a fresh process."""
    return subprocess.run([sys.executable, str(TRAIN_SCRIPT), *args], env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file with a header, as dicts of strings."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
