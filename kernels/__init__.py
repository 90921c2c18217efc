"""Sequence-mixing kernels of hydra-vision, installed as `hydra_vision.kernels`.

The public entry point is `quasiseparable_mix`: the Hydra mixer's bidirectional
quasiseparable matrix applied to x, with selectable backends (see `backend.py`);
`ssd_causal_mix` is its causal (Mamba-2 SSD) counterpart with the same backends.
"""
from .backend import available_backends, get_default_backend, resolve_backend, set_default_backend
from .quasiseparable import quasiseparable_mix
from .ssd import ssd_causal_mix

__all__ = [
    "available_backends",
    "get_default_backend",
    "quasiseparable_mix",
    "resolve_backend",
    "set_default_backend",
    "ssd_causal_mix",
]
