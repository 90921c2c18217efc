"""Mixed precision: autocast (bfloat16 by default, on by default for CUDA) and, for float16 on
CUDA only, timm's NativeScaler (loss scaling)."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch
from timm.utils import NativeScaler

__all__ = ["resolve_amp"]


def resolve_amp(args: argparse.Namespace, device: torch.device
                ) -> tuple[Callable[[], AbstractContextManager], NativeScaler | None]:
    """Set `args.amp` (None -> on for CUDA) and return (autocast factory, loss scaler or None)."""
    if args.amp is None:
        args.amp = device.type == "cuda"
    if not args.amp:
        return nullcontext, None
    dtype = torch.bfloat16 if args.amp_dtype == "bfloat16" else torch.float16
    scaler = NativeScaler(device=device.type) if dtype == torch.float16 and device.type == "cuda" else None
    return partial(torch.autocast, device_type=device.type, dtype=dtype), scaler
