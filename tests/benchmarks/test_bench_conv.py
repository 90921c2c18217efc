"""bench_conv.py's CPU half: the bytes a pass must move and the shape argument."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_conv  # noqa: E402


def test_min_bytes_counts_the_tensors_each_pass_must_touch():
    # hydra_vit_base at 224 px: 128 x 196 tokens x 1,792 bf16 channels is 89.9 MB per tensor
    one = 128 * 196 * 1792 * 2
    assert bench_conv.min_bytes(128, 196, 1792, 2, "fwd") == 2 * one  # x in, y out
    assert bench_conv.min_bytes(128, 196, 1792, 2, "bwd") == 3 * one  # x and dy in, dx out


def test_shapes_parse_and_bad_ones_name_the_format():
    assert bench_conv.parse_shape("8x4096") == (8, 4096)
    with pytest.raises(argparse.ArgumentTypeError, match="BATCHxLENGTH"):
        bench_conv.parse_shape("8,4096")


def test_without_cuda_it_says_so(monkeypatch, capsys):
    monkeypatch.setattr(bench_conv.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        bench_conv.main([])
    assert "no CUDA device" in capsys.readouterr().err


def test_picked_configs_names_every_conv_kernel_of_the_tree():
    names = set(bench_conv.picked_configs())
    assert names and all(n.startswith("_conv_") and n.endswith("_kernel") for n in names)
    assert "_conv_fwd_kernel" in names
