"""extract_to_file: contents, manifest, unreadable images, resume after interruption, plan checks."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hydra_vision.features import FeatureExtractor, extract_to_file, list_images, read_features
from hydra_vision.features.pipeline import _dispatch_only
from hydra_vision.features.store import ShardStore, manifest_path, shards_path

from .conftest import CLASSES, make_model


def _extractor(**kwargs) -> FeatureExtractor:
    return FeatureExtractor(make_model(), **kwargs)


def test_contents_and_manifest(image_root: Path, tmp_path: Path):
    images = list_images(image_root / "val")
    extractor = _extractor(layers=[0])
    result = extract_to_file(extractor, images, tmp_path / "f.safetensors", batch_size=5, shard_size=7,
                             settings={"note": "x"}, progress=False)
    outputs, manifest = read_features(tmp_path / "f.safetensors")
    expected = extractor(images.paths)
    assert set(outputs) == {"embeddings", "blocks.0"}
    for key, value in expected.items():
        torch.testing.assert_close(outputs[key], value, rtol=1e-5, atol=1e-5)
    assert result.num_images == 12 and result.skipped == []
    assert manifest["paths"] == images.paths and manifest["labels"] == [0] * 4 + [1] * 4 + [2] * 4
    assert manifest["classes"] == list(CLASSES) and manifest["skipped"] == [] and manifest["settings"] == {"note": "x"}
    assert manifest["outputs"] == {"embeddings": [12, 192], "blocks.0": [12, 192, 2, 2]}
    assert not shards_path(tmp_path / "f.safetensors").exists()


def test_unreadable_images_are_skipped_counted_and_listed(broken_folder: Path, tmp_path: Path):
    images = list_images(broken_folder)
    result = extract_to_file(_extractor(), images, tmp_path / "f.safetensors", batch_size=4, shard_size=5,
                             progress=False)
    outputs, manifest = read_features(tmp_path / "f.safetensors")
    bad = [str(broken_folder / "dog" / n) for n in ("empty.jpg", "truncated.png")]
    assert [path for path, _ in result.skipped] == bad
    assert [s["path"] for s in manifest["skipped"]] == bad
    assert all(s["error"].startswith(("UnidentifiedImageError", "OSError", "SyntaxError")) for s in manifest["skipped"])
    good = [p for p in images.paths if p not in bad]
    assert manifest["paths"] == good and outputs["embeddings"].shape == (12, 192)
    assert manifest["labels"] == [images.labels[images.paths.index(p)] for p in good]


def test_no_readable_image_is_an_error(tmp_path: Path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 images could be read"):
        extract_to_file(_extractor(), list_images(tmp_path / "in"), tmp_path / "f.npy", progress=False)


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, shards: int) -> None:
    """Makes ShardStore.write raise KeyboardInterrupt once `shards` shards are written."""
    write = ShardStore.write
    count = {"n": 0}

    def failing_write(self, k, shard):
        if count["n"] == shards:
            self._file(k).with_name(f".{self._file(k).name}.tmp").write_bytes(b"half-written")
            raise KeyboardInterrupt
        count["n"] += 1
        write(self, k, shard)

    monkeypatch.setattr(ShardStore, "write", failing_write)


@pytest.mark.parametrize("suffix", [".safetensors", ".npy"])
def test_resume_after_interruption_gives_identical_files(broken_folder: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, suffix: str):
    images = list_images(broken_folder)
    kwargs = dict(batch_size=2, shard_size=3, settings={"model": "tiny"}, progress=False)
    clean, resumed = tmp_path / f"clean{suffix}", tmp_path / f"resumed{suffix}"
    extract_to_file(_extractor(), images, clean, **kwargs)

    with monkeypatch.context() as patch:
        _interrupt_after(patch, shards=2)
        with pytest.raises(KeyboardInterrupt):
            extract_to_file(_extractor(), images, resumed, **kwargs)
    assert not resumed.exists()
    done = sorted(p.name for p in shards_path(resumed).iterdir())
    assert done == [".shard-00002.safetensors.tmp", "plan.json", "shard-00000.safetensors", "shard-00001.safetensors"]

    extractor = _extractor()
    calls = []
    forward = extractor.forward
    monkeypatch.setattr(extractor, "forward", lambda x: calls.append(len(x)) or forward(x))
    extract_to_file(extractor, images, resumed, **kwargs)
    assert sum(calls) == len(images) - 6 - 2  # the 2 unreadable images are in the last shards
    assert resumed.read_bytes() == clean.read_bytes()
    assert manifest_path(resumed).read_bytes() == manifest_path(clean).read_bytes()
    assert not shards_path(resumed).exists()


def test_worker_processes_give_the_same_file(image_root: Path, tmp_path: Path):
    images = list_images(image_root / "train")
    for workers in (0, 2):
        extract_to_file(_extractor(), images, tmp_path / f"w{workers}.safetensors", batch_size=3, shard_size=4,
                        workers=workers, progress=False)
    assert (tmp_path / "w0.safetensors").read_bytes() == (tmp_path / "w2.safetensors").read_bytes()


def test_shards_of_another_run_are_refused(image_root: Path, tmp_path: Path):
    images = list_images(image_root / "val")
    out = tmp_path / "f.safetensors"
    extract_to_file(_extractor(), images, out, shard_size=4, settings={"dtype": "fp32"}, keep_shards=True,
                    progress=False)
    with pytest.raises(ValueError, match=r"holds shards of another extraction \(differs in: settings, shard_size\)"):
        extract_to_file(_extractor(), images, out, shard_size=5, settings={"dtype": "bf16"}, progress=False)


def test_a_resume_with_other_weights_outputs_or_batches_is_refused(image_root: Path, tmp_path: Path):
    """The plan holds what the extractor computes, not only the caller's settings: shards made with other
    weights (e.g. a checkpoint rewritten in place), other outputs or another batch size are not mixed in."""
    images = list_images(image_root / "val")
    out = tmp_path / "f.safetensors"
    extract_to_file(_extractor(), images, out, batch_size=2, shard_size=4, keep_shards=True, progress=False)
    retrained = _extractor()
    with torch.no_grad():
        next(retrained.model.parameters()).add_(1)
    reruns = {"extractor": (retrained, 2), "batch_size": (_extractor(), 3)}
    for changed, (extractor, batch_size) in reruns.items():
        with pytest.raises(ValueError, match=rf"differs in: {changed}\)"):
            extract_to_file(extractor, images, out, batch_size=batch_size, shard_size=4, progress=False)
    with pytest.raises(ValueError, match=r"differs in: extractor\)"):
        extract_to_file(_extractor(layers=[0]), images, out, batch_size=2, shard_size=4, progress=False)


def test_npy_output(image_root: Path, tmp_path: Path):
    images = list_images(image_root / "val")
    extractor = FeatureExtractor(make_model(), dtype=torch.bfloat16)
    extract_to_file(extractor, images, tmp_path / "f.npy", progress=False)
    array = np.load(tmp_path / "f.npy")
    assert array.dtype == np.float32 and array.shape == (12, 192)
    outputs, manifest = read_features(tmp_path / "f.npy")
    assert torch.equal(outputs["embeddings"], torch.from_numpy(array)) and manifest["outputs"] == {
        "embeddings": [12, 192]}


def test_output_path_errors(image_root: Path, tmp_path: Path):
    images = list_images(image_root / "val")
    with pytest.raises(ValueError, match=r"\.npy holds one array, but there are 2 outputs \(embeddings, blocks\.1\)"):
        extract_to_file(_extractor(layers=[-1]), images, tmp_path / "f.npy", progress=False)
    with pytest.raises(ValueError, match="output must end in .safetensors or .npy"):
        extract_to_file(_extractor(), images, tmp_path / "f.pt", progress=False)
    assert not list(tmp_path.iterdir())


def test_bf16_safetensors_keeps_dtype(image_root: Path, tmp_path: Path):
    extractor = FeatureExtractor(make_model(), dtype=torch.bfloat16, layers=[0], embeddings=False,
                                 output_fmt="NLC")
    extract_to_file(extractor, list_images(image_root / "val"), tmp_path / "f.safetensors", progress=False)
    tensors = load_file(tmp_path / "f.safetensors")
    assert {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()} == {"blocks.0": ((12, 4, 192), torch.bfloat16)}


@pytest.mark.parametrize(("device", "workers", "inside"), [("cuda", 2, 1), ("cuda", 0, None), ("cpu", 2, None)])
def test_main_process_dispatches_with_one_thread_only_for_a_gpu_fed_by_loaders(device: str, workers: int,
                                                                                inside: int | None):
    """With loader processes feeding a CUDA model, the main process's thread pool would compete with them;
    a CPU model (or decoding in the main process) keeps its threads. The thread count is restored."""
    before = torch.get_num_threads()
    with _dispatch_only(SimpleNamespace(device=torch.device(device)), workers):
        assert torch.get_num_threads() == (inside or before)
    assert torch.get_num_threads() == before
