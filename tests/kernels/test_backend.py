"""Backend choice: which names pick the opt-in Triton kernels (conv, gated norm)."""
from __future__ import annotations

import pytest
import torch

from hydra_vision.kernels.backend import (
    BACKENDS, get_default_backend, resolve_backend, set_default_backend, triton_by_name)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: tests/conftest.py sets TRITON_INTERPRET


@pytest.fixture
def default_backend():
    before = get_default_backend()
    yield set_default_backend
    set_default_backend(None if before == "auto" else before)


def test_only_the_name_triton_picks_the_opt_in_kernels(default_backend):
    x = torch.zeros(2, 3, device=DEVICE)
    assert triton_by_name("triton", x)
    assert not triton_by_name("auto", x) and not triton_by_name("reference", x) and not triton_by_name("naive", x)
    assert not triton_by_name("triton", x.double())  # no fp64 Triton kernels
    default_backend("triton")
    assert triton_by_name(None, x)
    default_backend("reference")
    assert not triton_by_name(None, x)


def test_meta_tensors_take_the_reference_under_every_name():
    """Shape propagation and FLOP counting on the meta device must not need CUDA."""
    x = torch.zeros(2, 3, device="meta")
    assert [resolve_backend(name, x) for name in BACKENDS] == ["reference"] * len(BACKENDS)
    assert not triton_by_name("triton", x)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown kernel backend 'cuda'"):
        triton_by_name("cuda", torch.zeros(1))
