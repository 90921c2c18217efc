"""hydra_vit_* behave like timm's own ViT family (TIMM_CONTRACT.md), for every registered variant."""
import pickle

import pytest
import timm
import torch
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.models import group_parameters

from hydra_vision.models import HydraVisionTransformer

from ._helpers import IMG, MODELS, PATCH, create, images

GRID = IMG // PATCH


def test_registry_lists_the_four_variants():
    assert MODELS == ["hydra_vit_base", "hydra_vit_large", "hydra_vit_small", "hydra_vit_tiny"]
    assert all(timm.is_model(m) for m in MODELS) and not timm.list_pretrained("hydra*")  # no weights published


@pytest.mark.parametrize("name", MODELS)
def test_default_cfg(name):
    model = create(name, device="meta")
    cfg = model.pretrained_cfg
    for key in ("input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "num_classes",
                "first_conv", "classifier", "fixed_input_size"):
        assert key in cfg, key
    assert cfg["input_size"] == (3, 224, 224) and cfg["num_classes"] == 1000
    assert not cfg.get("url") and not cfg.get("hf_hub_id")
    keys = model.state_dict().keys()
    assert cfg["first_conv"] + ".weight" in keys and cfg["classifier"] + ".weight" in keys
    assert model.in_chans == cfg["input_size"][0] and model.num_classes == cfg["num_classes"]


WIDTH_DEPTH = {"hydra_vit_tiny": (192, 20), "hydra_vit_small": (384, 22), "hydra_vit_base": (768, 24),
               "hydra_vit_large": (1024, 48)}


def _block_params(d: int, d_state: int = 64, headdim: int = 64, d_conv: int = 7) -> int:
    """HYDRA.md's layer: in_proj, conv (+bias), dt_bias/A_log/D, fc_D, norm, out_proj, plus the block LayerNorm."""
    d_inner, H = 2 * d, 2 * d // headdim
    conv_dim = d_inner + 4 * d_state
    return (d * (2 * d_inner + 4 * d_state + 2 * H) + conv_dim * (d_conv + 1) + 3 * H + d_inner * H
            + d_inner + d_inner * d + 2 * d)


@pytest.mark.parametrize("name", MODELS)
def test_full_size_architecture(name):
    width, depth = WIDTH_DEPTH[name]
    model = timm.create_model(name, device="meta")
    assert (model.embed_dim, len(model.blocks), model.patch_embed.patch_size) == (width, depth, (16, 16))
    assert model.pos_embed is None and model.cls_token is None and model.global_pool == "avg"
    assert all(b.mlp is None for b in model.blocks)
    stem = 3 * 16 * 16 * width + width
    expected = stem + depth * _block_params(width) + 2 * width + width * 1000 + 1000
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_parameter(name):
    model = create(name, num_classes=7)
    x = images()
    out = model(x)
    assert out.shape == (2, 7)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", MODELS)
def test_features_head_and_pooling(name):
    model = create(name).eval()
    x = images()
    feats = model.forward_features(x)
    assert feats.shape == (2, GRID * GRID, model.embed_dim)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.head_hidden_size) and model.head_hidden_size == model.num_features
    torch.testing.assert_close(pre, feats.mean(1))
    torch.testing.assert_close(model(x), model.head(pre))
    assert create(name, num_classes=0)(x).shape == (2, model.num_features)
    assert create(name, num_classes=0, global_pool="")(x).shape == (2, GRID * GRID, model.num_features)


def test_class_token_pos_embed_and_layer_scale():
    model = create("hydra_vit_tiny", class_token=True, global_pool="token", pos_embed="learn", init_values=1e-5,
                   mlp_ratio=2.0).eval()
    assert model.num_prefix_tokens == 1 and model.pos_embed.shape == (1, 1 + GRID * GRID, 192)
    assert torch.equal(model.blocks[0].ls1.gamma, torch.full((192,), 1e-5)) and model.blocks[0].mlp is not None
    x = images()
    feats = model.forward_features(x)
    assert feats.shape == (2, 1 + GRID * GRID, 192)
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats[:, 0])
    assert {"pos_embed", "cls_token"} == model.no_weight_decay()
    model.train()(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_drop_path_and_drop_rate_only_in_training():
    model = create("hydra_vit_tiny", drop_path_rate=0.5, drop_rate=0.5)
    assert isinstance(model.blocks[0].drop_path1, torch.nn.Identity) and model.blocks[1].drop_path1.drop_prob == 0.5
    x = images()
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_features_only_out_indices(name):
    model = create(name, depth=4, features_only=True, out_indices=(0, 2, 3)).eval()
    feats = model(images())
    assert model.feature_info.channels() == [model.feature_info.info[0]["num_chs"]] * 3
    assert model.feature_info.reduction() == [PATCH] * 3
    assert [f.shape for f in feats] == [(2, c, GRID, GRID) for c in model.feature_info.channels()]
    full = create(name, depth=4).eval()
    _, inter = full.forward_intermediates(images(), indices=(0, 2, 3))
    for a, b in zip(feats, inter):
        torch.testing.assert_close(a, b)


def _manual_blocks(model, x):
    """Block outputs computed by hand: embed, then each block."""
    tokens = model.patch_embed(x)
    outs = []
    for blk in model.blocks:
        tokens = blk(tokens)
        outs.append(tokens)
    return outs


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_and_prune(name):
    model = create(name, depth=3).eval()
    x = images()
    manual = _manual_blocks(model, x)
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert len(inter) == 3
    for a, b in zip(inter, manual):
        torch.testing.assert_close(a, b.transpose(1, 2).reshape(2, -1, GRID, GRID))
    nlc = model.forward_intermediates(x, indices=[-2], output_fmt="NLC", norm=True, intermediates_only=True)
    torch.testing.assert_close(nlc[0], model.norm(manual[1]))
    early = model.forward_intermediates(x, indices=1, stop_early=True, intermediates_only=True)
    torch.testing.assert_close(early[0], inter[-1])
    kept = model.prune_intermediate_layers(indices=[0, 1])
    assert kept == [0, 1] and len(model.blocks) == 2 and model.num_classes == 0
    pruned = model.forward_intermediates(x, intermediates_only=True)
    for a, b in zip(pruned, inter[:2]):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


def test_forward_intermediates_with_class_token():
    model = create("hydra_vit_tiny", class_token=True, global_pool="token").eval()
    out = model.forward_intermediates(images(), indices=1, return_prefix_tokens=True, intermediates_only=True)
    spatial, prefix = out[0]
    assert spatial.shape == (2, 192, GRID, GRID) and prefix.shape == (2, 1, 192)


@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier(name):
    model = create(name)
    model.patch_embed.requires_grad_(False)
    model.reset_classifier(5)
    assert model.num_classes == 5 and model(images()).shape == (2, 5) and model.global_pool == "avg"
    model.reset_classifier(0, global_pool="")
    assert model(images()).shape == (2, GRID * GRID, model.embed_dim)
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    with pytest.raises(ValueError, match="class_token"):
        model.reset_classifier(3, global_pool="token")


def test_reset_classifier_keeps_device_dtype_and_mode():
    model = create("hydra_vit_tiny").to(torch.bfloat16).eval()
    model.reset_classifier(4)
    assert model.head.weight.dtype == torch.bfloat16 and not model.head.training
    meta = create("hydra_vit_tiny", device="meta")
    meta.reset_classifier(4)
    assert meta.head.weight.device.type == "meta"


@pytest.mark.parametrize("name", MODELS)
def test_dynamic_img_size_matches_a_model_built_for_that_size(name):
    dyn = create(name, dynamic_img_size=True).eval()
    for size in [(32, 64), (64, 32), (48, 48)]:
        fixed = create(name, img_size=size).eval()
        fixed.load_state_dict(dyn.state_dict())
        x = images(size=size)
        torch.testing.assert_close(dyn(x), fixed(x))
        _, inter = dyn.forward_intermediates(x, indices=1)
        assert inter[0].shape == (2, dyn.embed_dim, size[0] // PATCH, size[1] // PATCH)


@pytest.mark.parametrize("kwargs", [{}, {"dynamic_img_size": True}, {"pos_embed": "none"}, {"class_token": True}])
def test_tokens_are_row_major_through_the_blocks(kwargs):
    """PatchEmbed's tokens are a transposed view; the blocks must get (and keep) a row-major stream, else every
    norm, cast and residual add runs on a column-major layout (non-vectorised copies on the GPU)."""
    model = create("hydra_vit_tiny", **kwargs).eval()
    with torch.no_grad():
        tokens = model._embed(images())
        assert tokens.is_contiguous(), tokens.stride()
        assert model.blocks(tokens).is_contiguous()


def test_dynamic_img_size_resamples_learned_pos_embed_like_set_input_size():
    dyn = create("hydra_vit_tiny", dynamic_img_size=True, pos_embed="learn", class_token=True).eval()
    fixed = create("hydra_vit_tiny", pos_embed="learn", class_token=True).eval()
    fixed.load_state_dict(dyn.state_dict())
    fixed.pos_embed.requires_grad_(False)
    fixed.set_input_size(img_size=(32, 80))
    assert fixed.pos_embed.shape == (1, 1 + 2 * 5, 192) and not fixed.pos_embed.requires_grad
    x = images(size=(32, 80))
    torch.testing.assert_close(dyn(x), fixed(x))


def test_grad_checkpointing_same_outputs_and_gradients():
    model = create("hydra_vit_tiny", depth=3, drop_path_rate=0.0)
    x = images()

    def grads():
        model.zero_grad()
        out = model(x)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    out_ref, grads_ref = grads()
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing
    out_ckpt, grads_ckpt = grads()
    torch.testing.assert_close(out_ckpt, out_ref, rtol=1e-4, atol=1e-5)
    for n in grads_ref:
        torch.testing.assert_close(grads_ckpt[n], grads_ref[n], rtol=1e-4, atol=1e-5, msg=n)
    inter = model.forward_intermediates(x, intermediates_only=True)
    model.set_grad_checkpointing(False)
    for a, b in zip(inter, model.forward_intermediates(x, intermediates_only=True)):
        torch.testing.assert_close(a, b)


def test_pickle_and_state_dict_round_trip():
    model = create("hydra_vit_tiny").eval()
    x = images()
    expected = model(x)
    torch.testing.assert_close(pickle.loads(pickle.dumps(model))(x), expected)
    other = create("hydra_vit_tiny", weight_init="skip").eval()
    assert not torch.allclose(other(x), expected)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(x), expected)


def test_meta_device_then_materialise():
    model = create("hydra_vit_small", device="meta")
    assert all(t.device.type == "meta" for t in list(model.parameters()) + list(model.buffers()))
    assert model(images().to("meta")).shape == (2, 1000)
    model = model.to_empty(device="cpu")
    model.init_weights()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.equal(model.blocks[0].mixer.A_log, torch.zeros_like(model.blocks[0].mixer.A_log))
    assert model(images()).isfinite().all()


@pytest.mark.parametrize("name", MODELS)
def test_bf16_in_bf16_out(name):
    model = create(name, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    out = model(images(dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.isfinite().all()
    assert model.forward_features(images(dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_init_follows_the_paper_and_official_layer():
    model = timm.create_model("hydra_vit_base", depth=2)
    mixer = model.blocks[0].mixer
    for w in (mixer.in_proj.weight, mixer.out_proj.weight, model.head.weight):
        assert 0.019 < w.std().item() < 0.021 and abs(w.mean().item()) < 1e-3  # trunc-normal, std 0.02
    assert torch.equal(mixer.A_log, torch.zeros(24)) and torch.equal(mixer.D, torch.ones(24))
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert torch.equal(model.head.bias, torch.zeros(1000))


def test_weight_decay_groups_and_layer_groups():
    model = create("hydra_vit_tiny", pos_embed="learn")
    names = {n for n, _ in model.named_parameters()}
    assert model.no_weight_decay() <= names
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    no_decay = {id(p) for p in groups[0]["params"]}
    for n, p in model.named_parameters():
        if n.split(".")[-1] in ("A_log", "dt_bias", "D") or n == "pos_embed":
            assert id(p) in no_decay, n
    layers = group_parameters(model, model.group_matcher(coarse=False))
    assert len(layers) == 4  # stem, 2 blocks, final norm
    assert sum(len(v) for v in layers.values()) == len(names)
    create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(not_an_arg=1), TypeError, "not_an_arg"),
        (dict(global_pool="token"), ValueError, "class_token"),
        (dict(global_pool="gem"), ValueError, "global_pool"),
        (dict(pos_embed="rope"), ValueError, "pos_embed"),
        (dict(mixer="gated_conv"), ValueError, "mixer"),
        (dict(img_size=50), ValueError, "not divisible by patch_size"),
    ],
)
def test_bad_construction_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        create("hydra_vit_tiny", **kwargs)


def test_bad_inputs_name_the_problem():
    model = create("hydra_vit_tiny")
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        model(images(chans=1))
    with pytest.raises(ValueError, match="expected 48x48 images, got 32x64"):
        model(images(size=(32, 64)))
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        create("hydra_vit_tiny", dynamic_img_size=True)(images(size=(40, 48)))
    padded = create("hydra_vit_tiny", dynamic_img_size=True, dynamic_img_pad=True).eval()
    assert padded.forward_features(images(size=(40, 48))).shape == (2, 3 * 3, 192)


def test_unknown_model_name():
    with pytest.raises(RuntimeError, match="Unknown model \\(hydra_vit_huge\\)"):
        timm.create_model("hydra_vit_huge")


def test_model_class_exported():
    assert isinstance(create("hydra_vit_tiny", device="meta"), HydraVisionTransformer)
