"""Choosing the backend of a kernel: an explicit argument, else the process default,
else the environment variable HYDRA_VISION_BACKEND, else `auto`.

`auto` means the fused Triton kernels for CUDA tensors when Triton is importable,
and the pure-PyTorch `reference` otherwise (CPU, meta, MPS, tracing for export).
Meta tensors (shape propagation, FLOP counting) take `reference` under every name.
"""
from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = ("auto", "naive", "reference", "triton")
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # what every Triton kernel here takes
ENV_VAR = "HYDRA_VISION_BACKEND"

_default_backend: str | None = None


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def set_default_backend(name: str | None) -> None:
    """Sets the process-wide default backend (`None` returns to the environment/auto)."""
    global _default_backend
    _default_backend = None if name is None else _check_name(name)


def get_default_backend() -> str:
    """The backend used when a call names none: set_default_backend, else $HYDRA_VISION_BACKEND, else auto."""
    if _default_backend is not None:
        return _default_backend
    return _check_name(os.environ.get(ENV_VAR, "auto") or "auto")


_TRITON_IMPORTABLE = importlib.util.find_spec("triton") is not None  # found once, at import


_AUTOCAST_DEVICE_TYPES = ("cuda", "cpu")  # torch always has autocast for these


def autocast_available(device_type: str) -> bool:
    """`torch.amp.is_autocast_available(device_type)`, answered without that call for CUDA and CPU. Dynamo in
    torch 2.11 cannot trace the call: under torch.compile it broke the graph at every block that asked."""
    return device_type in _AUTOCAST_DEVICE_TYPES or torch.amp.is_autocast_available(device_type)


def triton_available() -> bool:
    """True when Triton is installed and a CUDA device is present (no functools cache: torch.compile
    warns about tracing through one)."""
    return _TRITON_IMPORTABLE and torch.cuda.is_available()


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """The concrete backends that can run on `device` (all of them know CPU except triton)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    names = ["naive", "reference"]
    if device.type == "cuda" and triton_available():
        names.append("triton")
    return names


def resolve_backend(name: str | None, tensor: torch.Tensor) -> str:
    """Turns a requested backend (or None) into a concrete one for `tensor`'s device."""
    name = _check_name(name) if name is not None else get_default_backend()
    if tensor.device.type == "meta":
        return "reference"
    if name == "auto":
        return "triton" if tensor.device.type == "cuda" and triton_available() else "reference"
    if name == "triton" and tensor.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"backend 'triton' needs CUDA tensors (got device {tensor.device}); "
            "use backend='reference', or set TRITON_INTERPRET=1 to run Triton's interpreter on CPU"
        )
    return name


def use_triton(name: str | None, tensor: torch.Tensor) -> bool:
    """True when `name` (else the process default) resolves to `triton` for `tensor` and the Triton
    kernels take its dtype (TRITON_DTYPES); the conv and gated-norm kernels fall back to PyTorch
    otherwise (fp64, CPU without the interpreter, meta)."""
    return tensor.dtype in TRITON_DTYPES and resolve_backend(name, tensor) == "triton"
