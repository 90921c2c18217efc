"""bench_shell.py's CPU half: the bytes a pass must move, the shape argument, the kernels it names."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_shell  # noqa: E402


def test_min_bytes_counts_the_tensors_each_pass_must_touch():
    tokens = 128 * 196  # hydra_vit_base at 224 px, bf16
    assert bench_shell.min_bytes("conv", "fwd", tokens, 2) == 2 * tokens * 1792 * 2  # x in, y out
    assert bench_shell.min_bytes("conv", "bwd", tokens, 2) == 3 * tokens * 1792 * 2  # x, dy in, dx out
    assert bench_shell.min_bytes("gated_norm", "bwd", tokens, 2) == 5 * tokens * 1536 * 2  # dy, x, z in; dx, dz out
    assert bench_shell.min_bytes("layernorm", "fwd", tokens, 2) == 2 * tokens * 768 * 2


def test_shapes_parse_and_bad_ones_name_the_format():
    assert bench_shell.parse_shape("8x4096") == (8, 4096)
    with pytest.raises(argparse.ArgumentTypeError, match="BATCHxLENGTH"):
        bench_shell.parse_shape("8,4096")


def test_without_cuda_it_says_so(monkeypatch, capsys):
    monkeypatch.setattr(bench_shell.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        bench_shell.main([])
    assert "no CUDA device" in capsys.readouterr().err


def test_picked_configs_names_every_conv_kernel_of_the_tree():
    names = set(bench_shell.picked_configs())
    assert names and all(n.startswith("_conv_") and n.endswith("_kernel") for n in names)
    assert "_conv_fwd_kernel" in names


def test_an_unknown_op_is_named():
    with pytest.raises(ValueError, match="unknown op 'conv2d'"):
        bench_shell.passes("conv2d", 1, 4, None)


@pytest.mark.parametrize("op", sorted(bench_shell.WIDTHS))
def test_every_pass_runs_the_kernels_on_model_shaped_inputs(op):
    """In Triton's interpreter on CPU: each op's forward and backward run on inputs laid out as the
    model's (strided slices of an in_proj-like output) and return tensors of the op's width."""
    import torch

    for mode, fn in bench_shell.passes(op, 1, 5, torch.float32, device="cpu").items():
        out = fn()
        first = out[0] if isinstance(out, tuple) else out
        assert first.shape == (1, 5, bench_shell.WIDTHS[op]), (op, mode)
        assert torch.isfinite(first).all(), (op, mode)
