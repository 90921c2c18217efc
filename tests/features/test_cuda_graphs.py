"""FeatureExtractor(cuda_graphs=True): replayed CUDA graphs give the eager forward's outputs (the test_gpu_* tests
run only on a CUDA device); other devices are refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hydra_vision.features import FeatureExtractor, extract_to_file, list_images, read_features

from .conftest import make_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_needs_a_cuda_device():
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device, got cpu"):
        FeatureExtractor(make_model(), device="cpu", cuda_graphs=True)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_gpu_replay_equals_eager_for_new_data_and_a_smaller_last_batch(dtype: torch.dtype):
    """Replays run the eager forward's kernels, so outputs are equal bit for bit: for a second batch of the
    same shape (the static input is refreshed) and a smaller last batch (a second graph); results returned
    earlier are copies that later replays leave alone."""
    model = make_model(img_size=64)
    eager = FeatureExtractor(model, layers=[0], device="cuda", dtype=dtype)
    graphs = FeatureExtractor(model, layers=[0], device="cuda", dtype=dtype, cuda_graphs=True)
    batches = [torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
               for n, seed in ((8, 1), (8, 2), (3, 3))]
    replayed = [graphs(x) for x in batches]
    assert len(graphs._graphs) == 2
    for x, got in zip(batches, replayed):
        expected = eager(x)
        assert got.keys() == expected.keys() == {"embeddings", "blocks.0"}
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert graphs.identity() == eager.identity()


@needs_cuda
def test_gpu_extract_to_file_with_loader_workers_equals_eager(image_root: Path, tmp_path: Path):
    """Graphs are captured while the DataLoader's workers and pin-memory thread run; 12 images in batches of 5
    give two shapes."""
    model = make_model()
    images = list_images(image_root / "val")
    outputs = []
    for cuda_graphs in (False, True):
        extractor = FeatureExtractor(model, layers=[-1], device="cuda", cuda_graphs=cuda_graphs)
        out = tmp_path / f"graphs_{cuda_graphs}.safetensors"
        extract_to_file(extractor, images, out, batch_size=5, workers=2, progress=False)
        outputs.append(read_features(out)[0])
    eager, replayed = outputs
    assert eager.keys() == replayed.keys() and all(torch.equal(eager[k], replayed[k]) for k in eager)
