"""The training loss, chosen as timm's train.py chooses it."""
from __future__ import annotations

import argparse

import torch
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

__all__ = ["create_train_loss"]


def create_train_loss(args: argparse.Namespace, mixup_active: bool) -> torch.nn.Module:
    """Soft-target cross-entropy with mixup/cutmix (which carry the label smoothing), else label
    smoothing cross-entropy, else plain cross-entropy; binary cross-entropy with `--bce-loss`."""
    if mixup_active:
        if args.bce_loss:
            return BinaryCrossEntropy(target_threshold=args.bce_target_thresh)
        return SoftTargetCrossEntropy()
    if args.smoothing:
        if args.bce_loss:
            return BinaryCrossEntropy(smoothing=args.smoothing, target_threshold=args.bce_target_thresh)
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return torch.nn.CrossEntropyLoss()
