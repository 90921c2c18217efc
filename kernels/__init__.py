"""Sequence-mixing kernels of hydra-vision, installed as `hydra_vision.kernels`.

The public entry point is `quasiseparable_mix`: the Hydra mixer's bidirectional
quasiseparable matrix applied to x, with selectable backends (see `backend.py`).
"""
from .backend import available_backends, get_default_backend, resolve_backend, set_default_backend
from .quasiseparable import quasiseparable_mix

__all__ = [
    "available_backends",
    "get_default_backend",
    "quasiseparable_mix",
    "resolve_backend",
    "set_default_backend",
]
