"""Optional experiment trackers: TensorBoard (`--log-tensorboard`) and W&B (`--log-wandb`).

Each is used only when asked for and installed; asking for a missing one logs a warning, as
timm's train.py does for W&B. W&B receives the summary rows through timm's `update_summary`.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path
from typing import Any

__all__ = ["ScalarLogger"]

_logger = logging.getLogger(__name__)


class ScalarLogger:
    """Writes scalars to TensorBoard and starts the W&B run, where asked and installed."""

    def __init__(self, args: argparse.Namespace, run_dir: str | Path, config: dict[str, Any]) -> None:
        self.tensorboard = None
        self.wandb = False
        if args.log_tensorboard:
            if importlib.util.find_spec("tensorboard") is None:
                _logger.warning("--log-tensorboard: tensorboard is not installed (pip install tensorboard)")
            else:
                from torch.utils.tensorboard import SummaryWriter
                self.tensorboard = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        if args.log_wandb:
            if importlib.util.find_spec("wandb") is None:
                _logger.warning("--log-wandb: wandb is not installed (pip install wandb)")
            else:
                import wandb
                wandb.init(project=args.wandb_project or args.experiment or None, name=Path(run_dir).name,
                           config=config, dir=str(run_dir))
                self.wandb = True

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Log `values` at global step `step` (TensorBoard)."""
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb:
            import wandb
            wandb.finish()
