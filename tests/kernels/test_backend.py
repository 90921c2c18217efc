"""Backend choice: when the conv and gated-norm kernels take the Triton path."""
from __future__ import annotations

import warnings

import pytest
import torch

from hydra_vision.kernels.backend import (
    BACKENDS, autocast_available, get_default_backend, resolve_backend, set_default_backend, triton_available, use_triton)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: tests/conftest.py sets TRITON_INTERPRET


@pytest.fixture
def default_backend():
    before = get_default_backend()
    yield set_default_backend
    set_default_backend(None if before == "auto" else before)


def test_names_that_pick_the_triton_kernels(default_backend, monkeypatch):
    x = torch.zeros(2, 3, device=DEVICE)
    assert use_triton("triton", x)
    assert use_triton("auto", x) == (DEVICE == "cuda")  # auto: Triton on CUDA only, not in the interpreter
    assert not use_triton("reference", x) and not use_triton("naive", x)
    assert not use_triton("triton", x.double())  # no fp64 Triton kernels
    default_backend("triton")
    assert use_triton(None, x)
    default_backend("reference")
    assert not use_triton(None, x)
    if DEVICE == "cpu":
        monkeypatch.delenv("TRITON_INTERPRET")
        assert not use_triton("auto", x)
        with pytest.raises(ValueError, match="needs CUDA tensors"):
            use_triton("triton", x)


def test_meta_tensors_take_the_reference_under_every_name():
    """Shape propagation and FLOP counting on the meta device must not need CUDA."""
    x = torch.zeros(2, 3, device="meta")
    assert [resolve_backend(name, x) for name in BACKENDS] == ["reference"] * len(BACKENDS)
    assert not use_triton("triton", x)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown kernel backend 'cuda'"):
        use_triton("cuda", torch.zeros(1))


def test_torch_compile_traces_the_backend_choice_without_warnings():
    """The choice runs inside compiled models; torch.compile warned about a functools cache here."""
    @torch.compile(backend="eager", fullgraph=True)
    def choose(x):
        return x + 1 if triton_available() and use_triton("auto", x) else x - 1

    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = choose(torch.zeros(3, device=DEVICE))
    assert torch.equal(y, torch.full((3,), 1.0 if DEVICE == "cuda" else -1.0, device=DEVICE))
    assert [str(w.message) for w in caught] == []


def test_autocast_available_asks_torch_only_for_devices_other_than_cuda_and_cpu(monkeypatch):
    """torch.compile in torch 2.11 cannot trace torch.amp.is_autocast_available (a graph break a block), so the
    devices that always have autocast are answered without it."""
    asked = []

    def is_autocast_available(device_type):
        asked.append(device_type)
        return device_type == "xpu"

    monkeypatch.setattr(torch.amp, "is_autocast_available", is_autocast_available)
    assert autocast_available("cuda") and autocast_available("cpu") and asked == []
    assert autocast_available("xpu") and not autocast_available("meta") and asked == ["xpu", "meta"]
