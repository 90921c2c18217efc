"""Training with timm's recipe: train.py's options and YAML configs, EMA, DDP, exact resume.

`main(argv)` is the command line (`train_imagenet.py`); `train(args)` runs parsed options.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from timm.utils import setup_default_logging

from .config import build_parser, parse_args
from .trainer import train

__all__ = ["build_parser", "parse_args", "train", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (timm train.py options), train, and return the exit code (2 on bad input)."""
    setup_default_logging(logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    try:
        return train(parse_args(argv))
    except (ValueError, TypeError, FileNotFoundError) as e:
        logging.getLogger("train").error(str(e))
        return 2
