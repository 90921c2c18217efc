"""Shared fixtures: a reduced hydra_vit_tiny and a generated ImageFolder tree."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch

import hydra_vision  # noqa: F401  (registers hydra_vit_*)
from hydra_vision.data.synthetic import write_image_folder

MODEL = "hydra_vit_tiny"
MODEL_KWARGS = dict(depth=2, img_size=32, chunk_size=16)
CLS_KWARGS = dict(MODEL_KWARGS, class_token=True, global_pool="token")
CLASSES = ("cat", "dog", "fox")


def make_model(seed: int = 0, **kwargs) -> torch.nn.Module:
    """A reduced hydra_vit_tiny (no classifier unless `num_classes`), random weights from `seed`, in eval mode."""
    torch.manual_seed(seed)
    return timm.create_model(MODEL, **{"num_classes": 0, **MODEL_KWARGS, **kwargs}).eval()


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<root>/{train,val}/{cat,dog,fox}/*.jpg`, 4 images each, 40x48 pixels (read-only: copy to modify)."""
    return write_image_folder(tmp_path_factory.mktemp("images"), classes=CLASSES, images_per_class=4, size=(40, 48))


@pytest.fixture
def broken_folder(image_root: Path, tmp_path: Path) -> Path:
    """A copy of the train split plus a zero-byte JPEG and a truncated PNG in class 'dog'."""
    folder = tmp_path / "train"
    shutil.copytree(image_root / "train", folder)
    (folder / "dog" / "empty.jpg").write_bytes(b"")
    (folder / "dog" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return folder
