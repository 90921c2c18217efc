"""GemmPatchEmbed / patch_conv against timm's PatchEmbed and F.conv2d."""
import pytest
import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed

from hydra_vision.layers import GemmPatchEmbed, PatchConv2d
from hydra_vision.layers.patch_embed import patch_conv


@pytest.mark.parametrize("shape, patch, bias", [
    ((2, 3, 32, 32), (16, 16), True),
    ((1, 4, 30, 21), (8, 5), False),  # trailing rows and columns that fill no patch
    ((3, 1, 7, 7), (7, 7), True),  # one patch
], ids=["square", "ragged", "one_patch"])
def test_patch_conv_equals_conv2d(shape, patch, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, shape[1], *patch, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    out = patch_conv(x, w, b)
    ref = F.conv2d(x, w, b, stride=patch)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    dy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    inputs = [t for t in (x, w, b) if t is not None]
    for got, want in zip(torch.autograd.grad(out, inputs, dy), torch.autograd.grad(ref, inputs, dy)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_overlapping_or_padded_convs_keep_conv2d():
    conv = PatchConv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(1, 3, 9, 9)
    assert not conv.patchify
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))


@pytest.mark.parametrize("kwargs, size", [
    ({}, 32),
    ({"strict_img_size": False, "output_fmt": "NHWC"}, 48),
    ({"strict_img_size": False, "dynamic_img_pad": True}, 40),  # padded to 48 by PatchEmbed
], ids=["nlc", "nhwc", "padded"])
def test_matches_timm_patch_embed_with_its_state_dict(kwargs, size):
    torch.manual_seed(0)
    timm_embed = PatchEmbed(img_size=32, patch_size=16, in_chans=3, embed_dim=8, **kwargs)
    ours = GemmPatchEmbed(img_size=32, patch_size=16, in_chans=3, embed_dim=8, **kwargs)
    assert ours.state_dict().keys() == timm_embed.state_dict().keys()
    ours.load_state_dict(timm_embed.state_dict())
    x = torch.randn(2, 3, size, size)
    out = ours(x)
    torch.testing.assert_close(out, timm_embed(x), rtol=1e-5, atol=1e-5)
    assert out.is_contiguous()  # the tokens need no copy


def test_keeps_the_parameters_patch_embed_made():
    torch.manual_seed(1)
    timm_embed = PatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    torch.manual_seed(1)
    ours = GemmPatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    torch.testing.assert_close(ours.proj.weight, timm_embed.proj.weight, rtol=0, atol=0)
    assert isinstance(ours.proj, PatchConv2d) and ours.proj.weight.device.type == "cpu"
    assert [n for n, _ in ours.named_parameters()] == ["proj.weight", "proj.bias"]


def test_new_patch_size_resamples_into_a_patch_conv():
    """timm's set_input_size resamples the weight into a new nn.Conv2d; the embedding keeps it as a GEMM."""
    torch.manual_seed(2)
    timm_embed = PatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    ours = GemmPatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    ours.load_state_dict(timm_embed.state_dict())
    for embed in (timm_embed, ours):
        embed.set_input_size(patch_size=8)
    assert isinstance(ours.proj, PatchConv2d) and ours.proj.patchify
    x = torch.randn(1, 3, 32, 32)
    out = ours(x)
    assert out.shape == (1, 16, 8)
    torch.testing.assert_close(out, timm_embed(x), rtol=1e-5, atol=1e-5)
