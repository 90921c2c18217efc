"""benchmarks/knn_runs.sh: k-NN of trained runs' EMA features, each run's model rebuilt from its args.yaml."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hydra_vision.data.synthetic import write_image_folder
from hydra_vision.features import FeatureExtractor, knn_scores, list_images, read_features, topk_accuracy

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "knn_runs.sh"
KWARGS = dict(depth=1, img_size=32, patch_size=8, class_token=True)


def _run_folder(runs: Path, name: str, seed: int) -> Path:
    """A run folder as the trainer leaves it: args.yaml and a checkpoint whose EMA differs from the model."""
    import timm

    folder = runs / name
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    model = timm.create_model("hydra_vit_tiny", num_classes=3, global_pool="token", **KWARGS)
    ema = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"arch": "hydra_vit_tiny", "state_dict": model.state_dict(), "state_dict_ema": ema},
               folder / "model_best.pth.tar")
    args = {"model": "hydra_vit_tiny", "gp": "token", "model_kwargs": KWARGS}
    (folder / "args.yaml").write_text(yaml.safe_dump(args))
    return folder


def test_knn_of_each_seed0_run_uses_its_ema_weights(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", classes=("a", "b", "c"), images_per_class=3, size=(36, 40))
    runs = tmp_path / "runs"
    run = _run_folder(runs, "hydra-s0", seed=0)
    _run_folder(runs, "hydra-s1", seed=1)  # not seed 0: skipped
    (runs / "empty-s0").mkdir()  # no checkpoint: skipped
    env = {**os.environ, "OMP_NUM_THREADS": "1",  # the script's python3: this interpreter
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(SCRIPT), str(runs), str(data), "--device", "cpu", "--batch-size", "4",
                           "--workers", "0"], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["run"] for line in lines] == ["hydra-s0"]
    assert not (runs / "hydra-s1" / "knn.json").exists()
    assert (run / "val.pca.png").stat().st_size > 0

    extractor = FeatureExtractor("hydra_vit_tiny", checkpoint=run / "model_best.pth.tar", ema=True, pool="token",
                                 model_kwargs=KWARGS)
    features = {}
    for split in ("train", "val"):
        images = list_images(data / split)
        expected = extractor([str(p) for p in images.paths])["embeddings"]
        outputs, manifest = read_features(run / f"{split}.safetensors")
        torch.testing.assert_close(outputs["embeddings"], expected, rtol=1e-5, atol=1e-5)
        features[split] = (expected, torch.tensor(manifest["labels"]))
    no_ema = FeatureExtractor("hydra_vit_tiny", checkpoint=run / "model_best.pth.tar", pool="token",
                              model_kwargs=KWARGS)([str(p) for p in list_images(data / "val").paths])["embeddings"]
    assert not torch.allclose(no_ema, features["val"][0], atol=1e-3)  # the EMA weights, not the model's

    scores = knn_scores(*features["train"], features["val"][0], 3)
    assert lines[0]["top1"] == pytest.approx(topk_accuracy(scores, features["val"][1])[1])
