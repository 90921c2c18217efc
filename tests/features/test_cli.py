"""`hydra-vision extract` and `hydra-vision knn` end to end on generated images."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from hydra_vision.cli import main
from hydra_vision.features import knn_scores, read_features, topk_accuracy

from .conftest import MODEL, make_model

# on the CPU in fp32 also where CUDA is (the CLI's default there: cuda + bf16); the tests compare with the API's
SMALL = ["--model", MODEL, "--model-kwargs", "depth=2", "chunk_size=16", "--img-size", "32", "--workers", "0",
         "--device", "cpu", "--quiet"]


def _run(command: str, *argv: object) -> int:
    """`hydra-vision COMMAND ARGV...` through the real entry point."""
    return main([command, *map(str, argv)])


def _fails(capsys: pytest.CaptureFixture, message: str, command: str, *argv: object) -> None:
    """The command exits with 2 and prints one error line naming the problem, no traceback."""
    capsys.readouterr()
    assert _run(command, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hydra-vision {command}: error: ") and "Traceback" not in err, err
    assert re.search(message, err), err


def test_extract_then_knn(image_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    torch.save(make_model(seed=5).state_dict(), tmp_path / "w.pth")
    for split in ("train", "val"):
        assert _run("extract", image_root / split, "--out", tmp_path / f"{split}.safetensors", *SMALL,
                    "--checkpoint", tmp_path / "w.pth", "--batch-size", "5", "--normalize") == 0
    assert _run("knn", "--train", tmp_path / "train.safetensors", "--val", tmp_path / "val.safetensors",
                "-k", "5", "--device", "cpu", "--out", tmp_path / "knn.json") == 0
    train, train_manifest = read_features(tmp_path / "train.safetensors")
    val, val_manifest = read_features(tmp_path / "val.safetensors")
    torch.testing.assert_close(train["embeddings"].norm(dim=1), torch.ones(12))
    scores = knn_scores(train["embeddings"], torch.tensor(train_manifest["labels"]), val["embeddings"], 3, k=5)
    expected = topk_accuracy(scores, torch.tensor(val_manifest["labels"]))
    results = json.loads((tmp_path / "knn.json").read_text())
    assert results == dict(top1=expected[1], top5=expected[5], k=5, temperature=0.07, train=12, val=12, classes=3)
    assert f"top-1 {expected[1]:.2f}%" in capsys.readouterr().out


def test_extract_maps_only_bf16_with_picture(broken_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "maps.safetensors"
    assert _run("extract", broken_folder, "--out", out, *SMALL, "--pool", "none", "--layers", "0", "-1",
                "--layer-format", "NLC", "--dtype", "bf16", "--visualize", "3") == 0
    outputs, manifest = read_features(out)
    assert {k: (tuple(v.shape), v.dtype) for k, v in outputs.items()} == {
        "blocks.0": ((12, 4, 192), torch.bfloat16), "blocks.1": ((12, 4, 192), torch.bfloat16)}
    assert manifest["settings"]["dtype"] == "bf16" and len(manifest["skipped"]) == 2
    printed = capsys.readouterr().out
    assert "skipped 2 unreadable images" in printed and "empty.jpg" in printed and "truncated.png" in printed
    assert Image.open(tmp_path / "maps.pca.png").size == (3 * 32, 2 * 32)


def test_resize_on_device_skips_bad_images_and_matches_the_api(broken_folder: Path, tmp_path: Path):
    from hydra_vision.features import FeatureExtractor

    out = tmp_path / "dev.safetensors"
    assert _run("extract", broken_folder, "--out", out, *SMALL, "--resize-on", "device") == 0
    outputs, manifest = read_features(out)
    assert len(manifest["skipped"]) == 2 and manifest["settings"]["resize_on"] == "device"
    torch.manual_seed(0)  # the CLI's --seed default: the same initial weights
    extractor = FeatureExtractor(MODEL, img_size=32, model_kwargs=dict(depth=2, chunk_size=16), resize_on="device")
    torch.testing.assert_close(outputs["embeddings"], extractor(manifest["paths"])["embeddings"])


def test_rerun_resumes_from_kept_shards(image_root: Path, tmp_path: Path):
    args = [image_root / "val", *SMALL, "--shard-size", "5", "--keep-shards"]
    _run("extract", *args, "--out", tmp_path / "a.npy")
    first = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").unlink()
    (tmp_path / "a.shards" / "shard-00001.safetensors").unlink()
    _run("extract", *args, "--out", tmp_path / "a.npy")
    assert (tmp_path / "a.npy").read_bytes() == first


@pytest.mark.parametrize("extra, message", [
    (["--layers", "7"], "unknown layer index 7: the model has 2 blocks"),
    (["--checkpoint", "{other}"], r"does not match model 'hydra_vit_tiny'.*shape mismatch"),
    (["--checkpoint", "{missing}"], "checkpoint not found"),
    (["--ema", "--checkpoint", "{plain}"], "EMA weights were asked for"),
    (["--device", "cpu", "--cuda-graphs"], "cuda_graphs=True needs a CUDA device, got cpu"),
])
def test_extract_errors(image_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str],
                        message: str):
    torch.save(timm.create_model("hydra_vit_small", depth=2, img_size=32).state_dict(), tmp_path / "other.pth")
    torch.save({"state_dict": make_model().state_dict()}, tmp_path / "plain.pth")
    names = dict(other=tmp_path / "other.pth", missing=tmp_path / "nope.pth", plain=tmp_path / "plain.pth")
    _fails(capsys, message, "extract", image_root / "val", "--out", tmp_path / "f.safetensors", *SMALL,
           *[e.format(**names) for e in extra])


def test_extract_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    _fails(capsys, "no images", "extract", tmp_path / "empty", "--out", tmp_path / "f.safetensors", *SMALL)


def test_knn_needs_labels_and_matching_classes(image_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    _run("extract", image_root / "val", "--out", tmp_path / "val.safetensors", *SMALL)
    _run("extract", image_root / "val", "--out", tmp_path / "flat.safetensors", "--no-labels", *SMALL)
    manifest = read_features(tmp_path / "val.safetensors")[1]
    lines = [f"{path}\tanimal_{label}\n" for path, label in zip(manifest["paths"], manifest["labels"])]
    (tmp_path / "renamed.txt").write_text("".join(lines))
    _run("extract", tmp_path / "renamed.txt", "--out", tmp_path / "renamed.safetensors", *SMALL)
    _fails(capsys, "unlabelled images", "knn", "--train", tmp_path / "flat.safetensors",
           "--val", tmp_path / "val.safetensors")
    _fails(capsys, "3 classes the train file lacks", "knn", "--train", tmp_path / "renamed.safetensors",
           "--val", tmp_path / "val.safetensors")
    _fails(capsys, "has no 'blocks.0' output", "knn", "--train", tmp_path / "val.safetensors",
           "--val", tmp_path / "val.safetensors", "--key", "blocks.0")


def test_knn_val_with_fewer_classes_is_scored_by_class_name(image_root: Path, tmp_path: Path):
    """A val split that lacks a train class (its folder missing) has shifted label indices; k-NN must match
    the classes by name. The val images are train images here, so with k = 1 each finds itself: 100%."""
    _run("extract", image_root / "train", "--out", tmp_path / "train.safetensors", *SMALL)
    classes = read_features(tmp_path / "train.safetensors")[1]["classes"]
    subset = tmp_path / "val_subset"
    for path in sorted((image_root / "train").rglob("*.*")):
        if path.parent.name != classes[0]:
            (subset / path.parent.name).mkdir(parents=True, exist_ok=True)
            (subset / path.parent.name / path.name).write_bytes(path.read_bytes())
    _run("extract", subset, "--out", tmp_path / "val.safetensors", *SMALL)
    assert read_features(tmp_path / "val.safetensors")[1]["classes"] == classes[1:]
    assert _run("knn", "--train", tmp_path / "train.safetensors", "--val", tmp_path / "val.safetensors",
                "-k", "1", "--out", tmp_path / "knn.json") == 0
    results = json.loads((tmp_path / "knn.json").read_text())
    assert results["top1"] == 100.0 and results["val"] == 8
