"""Loading checkpoints: local files through timm's pretrained path, checkpoint_filter_fn, clear errors."""
import os
import pickle

import pytest
import safetensors.torch
import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from hydra_vision.models import checkpoint_filter_fn

from ._helpers import create, images


def _load_file(path, **kwargs):
    return create("hydra_vit_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_local_file(tmp_path, suffix):
    source = create("hydra_vit_tiny").eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), path)
    else:
        safetensors.torch.save_file(source.state_dict(), str(path))
    loaded = _load_file(path)
    x = images()
    torch.testing.assert_close(loaded(x), source(x))


def test_training_checkpoint_prefers_ema_and_strips_prefixes(tmp_path):
    model, ema = create("hydra_vit_tiny").eval(), create("hydra_vit_tiny", weight_init="skip").eval()
    torch.nn.init.normal_(ema.head.weight)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({
        "epoch": 3,
        "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
        "state_dict_ema": {"_orig_mod.module." + k: v for k, v in ema.state_dict().items()},
    }, path)
    torch.testing.assert_close(_load_file(path)(images()), ema(images()))


@pytest.mark.parametrize("wrapper, prefix", [
    ("state_dict", "module."), ("model", "_orig_mod."), ("model_ema", "model."), (None, "module._orig_mod."),
])
def test_filter_unwraps_and_strips(wrapper, prefix):
    state_dict = create("hydra_vit_tiny").state_dict()
    sd = {prefix + k: v for k, v in state_dict.items()}
    ckpt = {wrapper: sd, "optimizer": {}} if wrapper else sd
    out = checkpoint_filter_fn(ckpt, create("hydra_vit_tiny", device="meta"))
    assert out.keys() == state_dict.keys()
    assert all(out[k] is v for k, v in state_dict.items())


def test_pos_embed_resampled_to_the_model_grid(tmp_path):
    source = create("hydra_vit_tiny", pos_embed="learn", class_token=True, global_pool="token")
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file(source.state_dict(), str(path))
    target = _load_file(path, img_size=64, pos_embed="learn", class_token=True, global_pool="token")
    expected = resample_abs_pos_embed(source.pos_embed.detach(), new_size=(4, 4), old_size=(3, 3), num_prefix_tokens=1)
    assert target.pos_embed.shape == (1, 17, 192)
    torch.testing.assert_close(target.pos_embed.detach(), expected)
    torch.testing.assert_close(target.cls_token, source.cls_token)


def test_new_head_and_channels(tmp_path):
    source = create("hydra_vit_tiny")
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    model = _load_file(path, num_classes=10, in_chans=1)
    assert model.head.weight.shape == (10, 192)
    torch.testing.assert_close(model.patch_embed.proj.weight, source.patch_embed.proj.weight.sum(1, keepdim=True))
    torch.testing.assert_close(model.blocks[1].mixer.in_proj.weight, source.blocks[1].mixer.in_proj.weight)


def test_patch_embed_resampled_to_another_patch_size(tmp_path):
    source = create("hydra_vit_tiny")
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    model = _load_file(path, patch_size=8)
    expected = resample_patch_embed(source.patch_embed.proj.weight.detach(), [8, 8])
    torch.testing.assert_close(model.patch_embed.proj.weight.detach(), expected)
    assert model(images()).shape == (2, 1000)


def test_checkpoint_of_another_model_names_keys_and_shapes(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(create("hydra_vit_small").state_dict(), path)
    with pytest.raises(ValueError, match=r"blocks\.0\.mixer\.in_proj\.weight: checkpoint \(1816, 384\) vs model "
                                         r"\(1036, 192\)"):
        _load_file(path)


def test_checkpoint_missing_blocks_names_them(tmp_path):
    path = tmp_path / "shallow.pth"
    torch.save(create("hydra_vit_tiny").state_dict(), path)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*blocks\.2\.mixer"):
        _load_file(path, depth=3)


class _Payload:
    """Unpickling this would create a file: a checkpoint must never run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pth_files_load_with_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"state_dict": create("hydra_vit_tiny").state_dict(), "x": _Payload(str(marker))}, f,
                   pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert not marker.exists()
    with pytest.raises(RuntimeError, match="weights_only=True blocked"):
        _load_file(path)
    assert not os.path.exists(marker)
