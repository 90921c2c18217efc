"""hydra_vit_* with every mixer through timm.create_model: training, FX features, meta init, token count, export."""
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import create_feature_extractor

from ._helpers import DATA_INDEPENDENT, NAMES

TINY = dict(depth=2, img_size=32, patch_size=8, embed_dim=64, headdim=16, d_state=8)  # 16 tokens


def create(mixer: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("hydra_vit_tiny", mixer=mixer, **dict(TINY, **kwargs))


def images(batch: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_trains_on_a_fixed_batch(name):
    model = create(name, num_classes=5)
    assert all(block.mixer is not None for block in model.blocks)
    x, y = images(batch=16), torch.arange(16) % 5
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_features_and_fx_extraction(name):
    model = create(name, num_classes=0).eval()
    x = images()
    assert model(x).shape == (4, 64) and model.forward_features(x).shape == (4, 16, 64)
    out = create_feature_extractor(model, return_nodes={"blocks.1": "tokens"})(x)
    torch.testing.assert_close(out["tokens"], model.forward_intermediates(x, indices=[1], output_fmt="NLC")[1][0])


@pytest.mark.parametrize("name", NAMES)
def test_meta_device_then_init_weights(name):
    model = create(name, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    model = model.to_empty(device="cpu")
    model.init_weights()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model(images()).isfinite().all()


@pytest.mark.parametrize("name", DATA_INDEPENDENT)
def test_data_independent_mixers_get_the_token_count_and_reject_larger_images(name):
    model = create(name, class_token=True, global_pool="token")
    assert all(block.mixer.max_seq_len == 16 + 1 for block in model.blocks)
    assert model(images()).shape == (4, 1000)
    dynamic = create(name, dynamic_img_size=True).eval()
    assert dynamic(images(size=24)).shape == (4, 1000)
    with pytest.raises(ValueError, match=f"the {name} mixer was built for at most 16 tokens but got 25"):
        dynamic(images(size=40))


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_with_dynamic_batch(name):
    model = create(name, depth=1).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (images(),), dynamic_shapes=({0: batch},))
    x = images(batch=5)
    torch.testing.assert_close(program.module()(x), model(x))
