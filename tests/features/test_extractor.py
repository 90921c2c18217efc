"""FeatureExtractor: shapes/dtypes of each output kind, agreement with the model's own forward, checkpoints, errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import create_transform

from hydra_vision.features import FeatureExtractor

from .conftest import CLS_KWARGS, MODEL, MODEL_KWARGS, make_model

D = 192  # hydra_vit_tiny width
GRID = 2  # 32 px / patch 16


def _batch(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


CASES = {
    "embeddings": (dict(), {}, {"embeddings": (D,)}),
    "nchw": (dict(layers=[0, -1]), {}, {"embeddings": (D,), "blocks.0": (D, GRID, GRID), "blocks.1": (D, GRID, GRID)}),
    "nlc": (dict(layers=[1], output_fmt="NLC", embeddings=False), {}, {"blocks.1": (GRID * GRID, D)}),
    "nlc_prefix": (dict(layers=[-2], output_fmt="NLC", prefix_tokens=True), CLS_KWARGS,
                   {"embeddings": (D,), "blocks.0": (1 + GRID * GRID, D)}),
    "nchw_prefix": (dict(layers=[0], prefix_tokens=True, embeddings=False), CLS_KWARGS,
                    {"blocks.0": (D, GRID, GRID), "blocks.0.prefix": (1, D)}),
    "nchw_no_prefix_model": (dict(layers=[0], prefix_tokens=True, embeddings=False), {}, {"blocks.0": (D, GRID, GRID)}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", list(CASES))
def test_output_shapes_and_dtypes(case: str, dtype: torch.dtype):
    options, model_kwargs, expected = CASES[case]
    extractor = FeatureExtractor(make_model(**model_kwargs), dtype=dtype, **options)
    out = extractor(_batch())
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, *s) for k, s in expected.items()}
    assert all(v.dtype == dtype and v.is_contiguous() for v in out.values())
    assert sorted(extractor.output_names) == sorted(expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("layers", [[], [0]], ids=["features_path", "intermediates_path"])
def test_embeddings_equal_manual_pre_logits(layers: list[int], dtype: torch.dtype):
    model = make_model()
    x = _batch()
    extractor = FeatureExtractor(model, layers=layers, dtype=dtype)
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(x.to(dtype)), pre_logits=True)
    assert torch.equal(extractor(x)["embeddings"], expected)


def test_last_block_maps_equal_final_tokens():
    """With the final norm, the last block's NCHW map and NLC+prefix tokens are forward_features' tokens."""
    model = make_model(**CLS_KWARGS)
    x = _batch()
    with torch.inference_mode():
        tokens = model.forward_features(x)  # (B, 1 + 4, D)
    nlc = FeatureExtractor(model, layers=[-1], output_fmt="NLC", prefix_tokens=True, layer_norm=True)(x)
    torch.testing.assert_close(nlc["blocks.1"], tokens, rtol=0, atol=0)
    nchw = FeatureExtractor(model, layers=[-1], prefix_tokens=True, layer_norm=True, embeddings=False)(x)
    patches = tokens[:, 1:].reshape(3, GRID, GRID, D).permute(0, 3, 1, 2)
    torch.testing.assert_close(nchw["blocks.1"], patches, rtol=0, atol=0)
    torch.testing.assert_close(nchw["blocks.1.prefix"], tokens[:, :1], rtol=0, atol=0)


def test_pool_and_normalize_options():
    x = _batch()
    model = make_model()
    with torch.inference_mode():
        tokens = model.forward_features(x)
    maxed = FeatureExtractor("hydra_vit_tiny", pool="max", model_kwargs=dict(depth=2, chunk_size=16), img_size=32)
    maxed.model.load_state_dict(model.state_dict())
    torch.testing.assert_close(maxed(x)["embeddings"], tokens.amax(dim=1), rtol=0, atol=0)
    unit = FeatureExtractor(model, normalize=True)(x)["embeddings"]
    torch.testing.assert_close(unit, F.normalize(tokens.mean(dim=1), dim=1), rtol=1e-6, atol=1e-6)


def test_deterministic_and_same_for_paths_pil_and_uint8(image_root: Path):
    paths = sorted((image_root / "val" / "dog").glob("*.jpg"))[:3]
    extractor = FeatureExtractor(make_model(), layers=[0])
    from_paths = extractor(paths)
    again = FeatureExtractor(make_model(), layers=[0])(paths)
    from_pil = extractor([Image.open(p) for p in paths])
    from_uint8 = extractor(extractor.preprocess(paths))
    for key in from_paths:
        assert torch.equal(from_paths[key], again[key])
        assert torch.equal(from_paths[key], from_pil[key])
        assert torch.equal(from_paths[key], from_uint8[key])
    single = extractor(paths[0])
    torch.testing.assert_close(single["embeddings"], from_paths["embeddings"][:1], rtol=1e-5, atol=1e-5)


def test_preprocessing_follows_the_model_cfg(image_root: Path):
    """Resize/crop/normalisation equal timm's own eval transform of the model's data config."""
    path = next((image_root / "val" / "cat").glob("*.jpg"))
    model = make_model()
    extractor = FeatureExtractor(model)
    assert extractor.data_config["input_size"] == (3, 32, 32)
    assert extractor.data_config["mean"] == model.pretrained_cfg["mean"]
    assert extractor.data_config["crop_pct"] == model.pretrained_cfg["crop_pct"]
    reference = create_transform(**extractor.data_config)(Image.open(path).convert("RGB")).unsqueeze(0)
    torch.testing.assert_close(extractor.normalize_input(extractor.preprocess([path])), reference,
                               rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(reference), pre_logits=True)
    torch.testing.assert_close(extractor(path)["embeddings"], expected, rtol=1e-4, atol=1e-4)


def test_loads_a_checkpoint_into_a_model_given_by_name(tmp_path: Path):
    weights, ema = (make_model(seed=s, num_classes=10).state_dict() for s in (1, 2))
    torch.save({"arch": MODEL, "state_dict": weights, "state_dict_ema": ema}, tmp_path / "last.pth.tar")
    for use_ema, expected in ((False, weights), (True, ema)):
        extractor = FeatureExtractor(MODEL, checkpoint=tmp_path / "last.pth.tar", ema=use_ema,
                                     model_kwargs=MODEL_KWARGS)
        assert all(torch.equal(v, expected[k]) for k, v in extractor.model.state_dict().items())
    torch.save({"arch": "hydra_vit_small", "state_dict": weights}, tmp_path / "other.pth.tar")
    with pytest.raises(ValueError, match=f"trained with model 'hydra_vit_small', not '{MODEL}'"):
        FeatureExtractor(MODEL, checkpoint=tmp_path / "other.pth.tar", model_kwargs=MODEL_KWARGS)


@pytest.mark.parametrize("layers, message", [
    ([2], "unknown layer index 2: the model has 2 blocks"),
    ([-3], "unknown layer index -3"),
    ([0, -2], "duplicate layer indices"),
])
def test_bad_layer_indices(layers: list[int], message: str):
    with pytest.raises(ValueError, match=message):
        FeatureExtractor(make_model(), layers=layers)


def test_bad_arguments():
    model = make_model()
    with pytest.raises(ValueError, match="nothing to extract"):
        FeatureExtractor(model, embeddings=False)
    with pytest.raises(ValueError, match="output_fmt"):
        FeatureExtractor(model, layers=[0], output_fmt="NHWC")
    with pytest.raises(TypeError, match="only to a model given by name"):
        FeatureExtractor(model, pool="max")
    with pytest.raises(ValueError, match=r"expected an image tensor"):
        FeatureExtractor(model)(torch.zeros(2, 1, 3, 32, 32))
    with pytest.raises(TypeError, match="must hold uint8 images"):
        FeatureExtractor(model)([torch.zeros(3, 32, 32)])
    with pytest.raises(ValueError, match="several sizes"):
        FeatureExtractor(model)([torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(3, 32, 40, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="resize_on must be"):
        FeatureExtractor(model, resize_on="gpu")
    with pytest.raises(FileNotFoundError):
        FeatureExtractor(model)("/nonexistent.jpg")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resize_on", ["cpu", "device"])
def test_gpu_side_stream_preparation_is_waited_for(resize_on: str):
    """Host batches are prepared on the extractor's side stream; the forward on the current stream waits for
    them: with the side stream held busy, the outputs still equal those computed without it (and not those of
    the batch prepared before, whose memory the side stream reuses)."""
    model = make_model().to("cuda")
    extractor = FeatureExtractor(model, resize_on=resize_on)
    g = torch.Generator().manual_seed(2)
    before, batch = (torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(2))
    expected = extractor(batch.cuda())["embeddings"]  # on the device already: no side stream
    extractor(before.pin_memory())
    torch.cuda.synchronize()
    with torch.cuda.stream(extractor._prepare_stream):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU time before the next preparation can start
    got = extractor(batch.pin_memory())["embeddings"]
    assert torch.equal(got.cpu(), expected.cpu())
