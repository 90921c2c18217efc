"""Shared fixtures: a generated ImageFolder and one uninterrupted tiny training run."""
from __future__ import annotations

from pathlib import Path

import pytest

from hydra_vision.data.synthetic import write_image_folder

from ._helpers import run_training, tiny_run_args


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 5 JPEGs (36 px) in train/ and val/."""
    return write_image_folder(tmp_path_factory.mktemp("folder"), classes=3, images_per_class=5, size=36, seed=0)


@pytest.fixture(scope="session")
def trained_run(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of an uninterrupted 3-epoch tiny run (one DataLoader worker)."""
    output = tmp_path_factory.mktemp("runs")
    result = run_training(tiny_run_args(image_folder, output, "full", "-j", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return output / "full"
