"""`hydra-vision models`: parameter and FLOP counts checked against the layer formulas."""
import argparse
import json

import pytest
import timm

from hydra_vision.cli import models as models_cli
from hydra_vision.layers import Hydra


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def _projection_flops(width: int, depth: int, tokens: int, num_classes: int = 1000) -> int:
    """2 x multiply-adds of patch conv, in_proj, depthwise conv, fc_D, out_proj and head (HYDRA.md's layer)."""
    d_inner, H, N, k = 2 * width, 2 * width // 64, 64, 7
    conv_dim = d_inner + 4 * N
    block = width * (2 * d_inner + 4 * N + 2 * H) + conv_dim * k + d_inner * H + d_inner * width
    return 2 * (tokens * 3 * 16 * 16 * width + depth * tokens * block + width * num_classes)


@pytest.mark.parametrize("name, width, depth", [("hydra_vit_tiny", 192, 20), ("hydra_vit_base", 768, 24)])
def test_flops_are_projections_plus_scan(name, width, depth):
    row = models_cli.describe(name, 224)
    mixer = timm.create_model(name, device="meta").blocks[0].mixer
    scan = depth * models_cli.scan_flops(mixer, 196)
    assert row["tokens"] == 196 and row["scan_gflops"] * 1e9 == pytest.approx(scan, rel=1e-12)
    assert row["gflops"] * 1e9 == pytest.approx(_projection_flops(width, depth, 196) + scan, rel=1e-12)
    assert row["params_m"] * 1e6 == sum(p.numel() for p in timm.create_model(name, device="meta").parameters())


def test_scan_flops_cover_the_dense_blocks_and_grow_linearly():
    mixer = Hydra(768, chunk_size=64, device="meta")
    H, P, N, L = mixer.nheads, mixer.headdim, mixer.d_state, 64
    dense_block = 2 * (2 * L * L * N + 2 * L * L * H * P)  # two directions: C B^T and its product with x
    assert models_cli.scan_flops(mixer, L) >= dense_block
    ratio = models_cli.scan_flops(mixer, 16 * 64) / models_cli.scan_flops(mixer, 8 * 64)
    assert 1.95 < ratio < 2.1


def test_run_table_and_json(capsys):
    assert models_cli.run(_args("--filter", "hydra_vit_t*", "--img-size", "64")) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["model", "params"] and table[1].split()[0] == "hydra_vit_tiny"
    assert models_cli.run(_args("--filter", "hydra_vit_tiny", "--img-size", "64", "--json")) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["model"] == "hydra_vit_tiny" and row["tokens"] == 16 and float(table[1].split()[1]) == round(
        row["params_m"], 2)
    with pytest.raises(ValueError, match="no registered model matches"):
        models_cli.run(_args("--filter", "resnet_hydra*"))
