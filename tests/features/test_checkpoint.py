"""load_weights / --checkpoint: training checkpoints (model or EMA), timm state dicts, .safetensors, errors."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from hydra_vision.features import FeatureExtractor, load_weights

from .conftest import MODEL, MODEL_KWARGS, make_model


def _same_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state_dict[k]) for k, v in model.state_dict().items())


@pytest.fixture
def training_checkpoint(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A timm-train.py-style checkpoint of a 10-class model: model and EMA weights differ."""
    model, ema = (make_model(seed=s, num_classes=10).state_dict() for s in (1, 2))
    path = tmp_path / "last.pth.tar"
    torch.save({"epoch": 3, "arch": MODEL, "state_dict": model, "state_dict_ema": ema,
                "optimizer": {}, "args": argparse.Namespace(model=MODEL), "version": 2}, path)
    return path, model, ema


@pytest.mark.parametrize("ema", [False, True], ids=["model", "ema"])
def test_training_checkpoint_model_or_ema(training_checkpoint, ema: bool):
    path, model_sd, ema_sd = training_checkpoint
    model = make_model(seed=0)
    load_weights(model, path, ema=ema)
    assert _same_weights(model, ema_sd if ema else model_sd)
    assert not _same_weights(model, model_sd if ema else ema_sd)


def test_extractor_loads_checkpoint_by_name(training_checkpoint):
    path, _, ema_sd = training_checkpoint
    extractor = FeatureExtractor(MODEL, checkpoint=path, ema=True, model_kwargs=MODEL_KWARGS)
    assert _same_weights(extractor.model, ema_sd)


def test_plain_timm_state_dict_with_ddp_prefix_and_safetensors(tmp_path: Path):
    state_dict = make_model(seed=3).state_dict()
    torch.save({f"module.{k}": v for k, v in state_dict.items()}, tmp_path / "ddp.pth")
    save_file(state_dict, tmp_path / "weights.safetensors")
    for name in ("ddp.pth", "weights.safetensors"):
        model = make_model(seed=0)
        load_weights(model, tmp_path / name)
        assert _same_weights(model, state_dict)


def test_ema_asked_but_absent(tmp_path: Path):
    torch.save({"state_dict": make_model().state_dict()}, tmp_path / "no_ema.pth")
    save_file(make_model().state_dict(), tmp_path / "w.safetensors")
    for name in ("no_ema.pth", "w.safetensors"):
        with pytest.raises(ValueError, match="EMA weights were asked for"):
            load_weights(make_model(), tmp_path / name, ema=True)


def test_checkpoint_of_a_wider_model_names_the_shapes(tmp_path: Path):
    other = timm.create_model("hydra_vit_small", num_classes=0, depth=2, img_size=32)
    torch.save({"arch": "hydra_vit_small", "state_dict": other.state_dict()}, tmp_path / "small.pth")
    with pytest.raises(ValueError, match=r"saved from 'hydra_vit_small'.*does not match model 'hydra_vit_tiny'.*"
                                         r"shape mismatch.*patch_embed\.proj\.weight \(384, 3, 16, 16\) vs "
                                         r"\(192, 3, 16, 16\)"):
        load_weights(make_model(), tmp_path / "small.pth")


def test_checkpoint_of_another_family_names_the_keys(tmp_path: Path):
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=0, depth=2, img_size=32)
    save_file(vit.state_dict(), tmp_path / "vit.safetensors", metadata={"arch": "vit_tiny_patch16_224"})
    with pytest.raises(ValueError, match=r"saved from 'vit_tiny_patch16_224'\) does not match model 'hydra_vit_tiny': "
                                         r"missing keys: .*blocks\.0\.mixer.*"
                                         r"unexpected keys: .*blocks\.0\.attn"):
        load_weights(make_model(), tmp_path / "vit.safetensors")


def test_deeper_checkpoint_lists_unexpected_blocks(tmp_path: Path):
    torch.save(make_model(depth=3).state_dict(), tmp_path / "deep.pth")
    with pytest.raises(ValueError, match=r"unexpected keys: blocks\.2\."):
        load_weights(make_model(), tmp_path / "deep.pth")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_weights(make_model(), "/nonexistent/ckpt.pth")


def test_safetensors_exported_by_training(tmp_path: Path):
    from hydra_vision.training.checkpoint import export_safetensors

    state_dict = make_model(seed=4, num_classes=10).state_dict()
    export_safetensors(state_dict, tmp_path / "model.safetensors", arch=MODEL)
    model = make_model(seed=0)
    load_weights(model, tmp_path / "model.safetensors")
    assert _same_weights(model, state_dict)
