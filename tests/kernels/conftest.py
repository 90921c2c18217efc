"""Shared inputs for the kernel tests.

conftest modules are not importable under --import-mode=importlib, so tests get the
factories through the fixtures `mix_inputs` (-> `make_mix_inputs`) and
`cast_inputs` (-> `cast_mix_inputs`), and `operator_log` (-> `OperatorLog`).
"""
from __future__ import annotations

import math
from typing import Literal

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

MIX_TENSORS = ("x", "dt_fwd", "dt_bwd", "A", "B_fwd", "C_fwd", "B_bwd", "C_bwd", "D", "dt_bias")


def make_mix_inputs(
    batch: int = 2,
    L: int = 16,
    H: int = 4,
    P: int = 8,
    G: int = 1,
    N: int = 8,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seed: int = 0,
    diag: Literal["data", "head"] | None = "data",
    dt_softplus: bool = True,
    dt_bias: bool = True,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    shift: bool = True,
) -> dict:
    """Keyword arguments for `quasiseparable_mix` (all but chunk_size/backend).

    Values are drawn in fp64 on the CPU from `seed`, then cast, so one seed gives the
    same numbers (up to rounding) in every dtype and on every device. Data tensors
    (x, dt, B, C, data-dependent D) get `dtype`; the per-head parameters (A, dt_bias,
    per-head D) stay fp32 (fp64 when dtype is fp64), as in the mixer module.
    Scales: A in -[0.5, 4]; final dt log-uniform in [1e-3, 1e-1] (the Mamba-2 dt
    init), so decays range from negligible to strong; B, C ~ N(0, 1/sqrt(N)) so that
    C . B ~ N(0, 1).
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    def log_uniform_dt(*shape: int) -> torch.Tensor:
        return torch.exp(math.log(1e-3) + rand(*shape) * (math.log(1e-1) - math.log(1e-3)))

    def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
        return y + torch.log(-torch.expm1(-y))

    param_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    bias = log_uniform_dt(H) if dt_bias else None
    out = {"x": randn(batch, L, H, P), "A": -(0.5 + 3.5 * rand(H))}
    for name in ("dt_fwd", "dt_bwd"):
        target = log_uniform_dt(batch, L, H)
        if dt_softplus:  # raw + bias = inverse_softplus(target): dt lands in the init range
            out[name] = inverse_softplus(target) - (inverse_softplus(bias) if dt_bias else 0.0)
        else:
            out[name] = target - (bias if dt_bias else 0.0)
    if dt_softplus and dt_bias:
        bias = inverse_softplus(bias)
    for name in ("B_fwd", "C_fwd", "B_bwd", "C_bwd"):
        out[name] = randn(batch, L, G, N) * N**-0.25
    out["D"] = {"data": randn(batch, L, H), "head": randn(H), None: None}[diag]
    out["dt_bias"] = bias
    per_head = {"A", "dt_bias"} | ({"D"} if diag == "head" else set())
    for name, t in out.items():
        if t is not None:
            out[name] = t.to(device=device, dtype=param_dtype if name in per_head else dtype)
    return {**out, "dt_softplus": dt_softplus, "dt_limit": dt_limit, "shift": shift}


def cast_mix_inputs(kwargs: dict, dtype: torch.dtype | None = None, requires_grad: bool = False) -> dict:
    """A copy of `make_mix_inputs`' output: tensors detached, cloned, optionally cast
    to `dtype` (the per-head parameters A, dt_bias stay as they are) and made leaves
    that require grad."""
    out = dict(kwargs)
    for name in MIX_TENSORS:
        t = kwargs[name]
        if t is None:
            continue
        t = t.detach().clone()
        if dtype is not None and name not in ("A", "dt_bias") and not (name == "D" and t.dim() == 1):
            t = t.to(dtype)
        out[name] = t.requires_grad_(requires_grad)
    return out


@pytest.fixture
def mix_inputs():
    """The factory `make_mix_inputs`."""
    return make_mix_inputs


@pytest.fixture
def poison_allocations(monkeypatch):
    """A switch: once called, every floating-point tensor from torch.empty / torch.empty_like starts as NaN,
    so that a kernel that reads an element nothing wrote turns its result into NaN."""
    empty, empty_like = torch.empty, torch.empty_like

    def nan_filled(t: torch.Tensor) -> torch.Tensor:
        return t.fill_(float("nan")) if t.is_floating_point() else t

    def switch_on() -> None:
        monkeypatch.setattr(torch, "empty", lambda *a, **k: nan_filled(empty(*a, **k)))
        monkeypatch.setattr(torch, "empty_like", lambda *a, **k: nan_filled(empty_like(*a, **k)))

    return switch_on


@pytest.fixture
def cast_inputs():
    """The helper `cast_mix_inputs`."""
    return cast_mix_inputs


class OperatorLog(TorchDispatchMode):
    """A dispatch mode that passes every operator through and keeps its name in `names` (under it
    the fused kernels run as their custom ops: `eager_path.dispatcher_needed`)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.name())
        return func(*args, **(kwargs or {}))


@pytest.fixture
def operator_log():
    """The dispatch mode `OperatorLog`."""
    return OperatorLog


@pytest.fixture
def spy_chunk_size(monkeypatch):
    """spy_chunk_size(module, name) wraps module.name, a reference backend, and returns the list of the
    chunk_size each call received."""
    def install(module, name: str) -> list:
        seen = []
        real = getattr(module, name)

        def spy(*args, **kwargs):
            seen.append(kwargs["chunk_size"])
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
        return seen

    return install
