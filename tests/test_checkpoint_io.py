"""Reading checkpoints: weights_only files, model or EMA weights, prefixes, the model's filter, clear errors."""
from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from hydra_vision.checkpoint_io import load_checkpoint_file, load_model_weights
from hydra_vision.training.checkpoint import atomic_save

MODEL = "hydra_vit_tiny"


def _model(seed: int = 0, **kwargs) -> torch.nn.Module:
    """A reduced hydra_vit_tiny (no classifier unless `num_classes`) with random weights from `seed`."""
    torch.manual_seed(seed)
    return timm.create_model(MODEL, **{"depth": 1, "img_size": 32, "num_classes": 0, **kwargs})


def _same_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state_dict[k]) for k, v in model.state_dict().items())


def test_load_checkpoint_file_reads_weights_only_dicts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pth"):
        load_checkpoint_file(tmp_path / "missing.pth")
    atomic_save({"args": PurePosixPath("/etc"), "state_dict": {}}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="PurePosixPath.*weights_only"):
        load_checkpoint_file(tmp_path / "pickled.pth")
    atomic_save({"args": argparse.Namespace(lr=1.0, model="m"), "state_dict": {}}, tmp_path / "timm.pth")
    assert load_checkpoint_file(tmp_path / "timm.pth")["args"] == {"lr": 1.0, "model": "m"}  # timm train.py's
    atomic_save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="not a checkpoint dict"):
        load_checkpoint_file(tmp_path / "tensor.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint_file(tmp_path / "garbage.pth")


@pytest.mark.parametrize("model_key, ema_key", [("state_dict", "state_dict_ema"), ("model", "model_ema")],
                         ids=["timm-train", "model-key"])
@pytest.mark.parametrize("use_ema", [False, True, None], ids=["model", "ema", "ema-when-present"])
def test_model_or_ema_weights(tmp_path: Path, model_key: str, ema_key: str, use_ema: bool | None) -> None:
    weights, ema = (_model(seed=s, num_classes=10).state_dict() for s in (1, 2))
    path = tmp_path / "last.pth.tar"
    atomic_save({"epoch": 3, "arch": MODEL, model_key: weights, ema_key: ema,
                 "args": argparse.Namespace(model=MODEL), "version": 2}, path)
    model = _model(num_classes=10)
    load_model_weights(model, path, use_ema=use_ema, model_name=MODEL)
    assert _same_weights(model, weights if use_ema is False else ema)
    assert not _same_weights(model, ema if use_ema is False else weights)


def test_ema_when_present_falls_back_to_the_model_weights(tmp_path: Path) -> None:
    weights = _model(seed=1).state_dict()
    atomic_save({"state_dict": weights}, tmp_path / "no_ema.pth")
    model = _model()
    load_model_weights(model, tmp_path / "no_ema.pth", use_ema=None)
    assert _same_weights(model, weights)


def test_bare_state_dicts_lose_wrapper_prefixes(tmp_path: Path) -> None:
    """A torch.nn.Linear: its module has no checkpoint_filter_fn, so the loader itself removes the prefixes."""
    weights = torch.nn.Linear(4, 3).state_dict()
    atomic_save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "ddp.pth")
    atomic_save({f"_orig_mod.module.{k}": v for k, v in weights.items()}, tmp_path / "compiled_ddp.pth")
    save_file({f"module.{k}": v for k, v in weights.items()}, tmp_path / "ddp.safetensors")
    for name in ("ddp.pth", "compiled_ddp.pth", "ddp.safetensors"):
        model = torch.nn.Linear(4, 3)
        load_model_weights(model, tmp_path / name)
        assert _same_weights(model, weights), name


def test_classifier_is_ignored_by_a_model_without_one(tmp_path: Path) -> None:
    weights = _model(seed=4, num_classes=10).state_dict()
    save_file(weights, tmp_path / "w.safetensors")
    model = _model()
    load_model_weights(model, tmp_path / "w.safetensors")
    assert _same_weights(model, weights) and "head.weight" not in model.state_dict()
    with pytest.raises(ValueError, match=r"shape mismatch.*head\.weight \(10, 192\) vs \(5, 192\)"):
        load_model_weights(_model(num_classes=5), tmp_path / "w.safetensors")


def test_the_models_checkpoint_filter_resamples_the_position_embedding(tmp_path: Path) -> None:
    weights = _model(seed=5, pos_embed="learn").state_dict()
    save_file(weights, tmp_path / "w32.safetensors")
    model = _model(pos_embed="learn", img_size=48)
    load_model_weights(model, tmp_path / "w32.safetensors")
    expected = resample_abs_pos_embed(weights["pos_embed"], new_size=[3, 3], old_size=[2, 2], num_prefix_tokens=0)
    assert model.pos_embed.shape == (1, 9, 192)
    torch.testing.assert_close(model.pos_embed.data, expected, rtol=0, atol=0)
    assert _same_weights(model, {**weights, "pos_embed": expected})


def test_checkpoint_of_another_model_name_is_refused(tmp_path: Path) -> None:
    weights = _model().state_dict()
    atomic_save({"arch": MODEL, "state_dict": weights}, tmp_path / "w.pth.tar")
    save_file(weights, tmp_path / "w.safetensors", metadata={"arch": MODEL})
    for name in ("w.pth.tar", "w.safetensors"):
        with pytest.raises(ValueError, match=f"trained with model '{MODEL}', not 'deit_tiny_patch16_224'"):
            load_model_weights(_model(), tmp_path / name, model_name="deit_tiny_patch16_224")


def test_ema_asked_but_absent(tmp_path: Path) -> None:
    atomic_save({"state_dict": _model().state_dict()}, tmp_path / "no_ema.pth")
    save_file(_model().state_dict(), tmp_path / "w.safetensors")
    for name in ("no_ema.pth", "w.safetensors"):
        with pytest.raises(ValueError, match="EMA weights were asked for"):
            load_model_weights(_model(), tmp_path / name, use_ema=True)


def test_checkpoint_of_a_wider_model_names_the_shapes(tmp_path: Path) -> None:
    other = timm.create_model("hydra_vit_small", num_classes=0, depth=1, img_size=32)
    atomic_save({"arch": "hydra_vit_small", "state_dict": other.state_dict()}, tmp_path / "small.pth")
    with pytest.raises(ValueError, match=r"saved from 'hydra_vit_small'.*does not match model 'hydra_vit_tiny'.*"
                                         r"shape mismatch.*patch_embed\.proj\.weight \(384, 3, 16, 16\) vs "
                                         r"\(192, 3, 16, 16\)"):
        load_model_weights(_model(), tmp_path / "small.pth")


def test_checkpoint_of_another_family_names_the_keys(tmp_path: Path) -> None:
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=0, depth=1, img_size=32)
    save_file(vit.state_dict(), tmp_path / "vit.safetensors", metadata={"arch": "vit_tiny_patch16_224"})
    with pytest.raises(ValueError, match=r"saved from 'vit_tiny_patch16_224'\) does not match model 'hydra_vit_tiny': "
                                         r"missing keys: .*blocks\.0\.mixer.*"
                                         r"unexpected keys: .*blocks\.0\.attn"):
        load_model_weights(_model(), tmp_path / "vit.safetensors")


def test_deeper_checkpoint_lists_unexpected_blocks(tmp_path: Path) -> None:
    atomic_save(_model(depth=2).state_dict(), tmp_path / "deep.pth")
    with pytest.raises(ValueError, match=r"unexpected keys: blocks\.1\."):
        load_model_weights(_model(), tmp_path / "deep.pth")


def test_missing_corrupt_or_weightless_files(tmp_path: Path) -> None:
    for name in ("none.pth", "none.safetensors"):
        with pytest.raises(FileNotFoundError, match=f"checkpoint not found: .*{name}"):
            load_model_weights(_model(), tmp_path / name)
    for name in ("bad.pth.tar", "bad.safetensors"):
        (tmp_path / name).write_bytes(b"\x00garbage, not weights")
        with pytest.raises(ValueError, match=f"cannot read checkpoint .*{name}"):
            load_model_weights(_model(), tmp_path / name)
    atomic_save({"epoch": 1, "args": {}}, tmp_path / "no_weights.pth")
    with pytest.raises(ValueError, match="holds no weights: no state_dict or model entry"):
        load_model_weights(_model(), tmp_path / "no_weights.pth")
