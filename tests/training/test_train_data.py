"""Data: the generated ImageFolder, folder checks, unreadable images skipped and counted."""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image

from hydra_vision.data.synthetic import write_image_folder
from hydra_vision.training.data import class_names_of, create_eval_loader, create_image_dataset, find_split_folder
from hydra_vision.training.resume_sampler import SkippableSampler


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_write_image_folder_layout_and_determinism(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "a", classes=["cat", "dog"], images_per_class=3, size=(20, 28),
                              splits=("train", "val", "test"), seed=5)
    files = _digest(root)
    assert len(files) == 3 * 2 * 3
    assert {Path(f).parts[:2] for f in files} == {(s, c) for s in ("train", "val", "test") for c in ("cat", "dog")}
    with Image.open(root / "val" / "dog" / "dog_0002.jpg") as image:
        assert image.size == (28, 20) and image.mode == "RGB"
    splits = ("train", "val", "test")
    assert _digest(write_image_folder(tmp_path / "b", ["cat", "dog"], 3, (20, 28), splits, 5)) == files
    assert _digest(write_image_folder(tmp_path / "c", ["cat", "dog"], 3, (20, 28), splits, 6)) != files


@pytest.mark.parametrize("kwargs", [dict(classes=0), dict(classes=["a", "a"]), dict(images_per_class=0),
                                    dict(size=1)], ids=["no-classes", "duplicate-names", "no-images", "tiny"])
def test_write_image_folder_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        write_image_folder(tmp_path, **kwargs)


def test_split_search_and_missing_root(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "d", classes=2, images_per_class=1, size=8)
    assert find_split_folder(root, "validation") == root / "val"
    assert find_split_folder(root, "train") == root / "train"
    with pytest.raises(FileNotFoundError, match="data directory not found: .*nowhere"):
        find_split_folder(tmp_path / "nowhere", "train")


def test_empty_class_folder_is_an_error(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "d", classes=2, images_per_class=1, size=8)
    (root / "train" / "zebra").mkdir()
    (root / "train" / "zebra" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="1 class folder.*hold no images \\(zebra\\)"):
        find_split_folder(root, "train")


def test_split_without_any_image(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        find_split_folder(tmp_path, "train")


def test_eval_split_must_use_known_classes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "d", classes=["a", "b"], images_per_class=1, size=8)
    write_image_folder(tmp_path / "d", classes=["c"], images_per_class=1, size=8, splits=("val",))
    train = create_image_dataset("", root, "train", True)
    assert class_names_of(train) == ["a", "b"]
    with pytest.raises(ValueError, match="unknown to the model's classes: c"):
        create_image_dataset("", root, "val", False, class_map={"a": 0, "b": 1})


def test_val_split_keeps_train_class_indices(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "d", classes=["a", "b", "c"], images_per_class=1, size=8, splits=("train",))
    write_image_folder(tmp_path / "d", classes=["c"], images_per_class=2, size=8, splits=("val",))
    val = create_image_dataset("", root, "val", False, class_map={"a": 0, "b": 1, "c": 2})
    assert [val[i][1] for i in range(len(val))] == [2, 2]


def test_unreadable_images_are_skipped_and_counted_across_workers(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "d", classes=2, images_per_class=4, size=8, splits=("train",))
    (root / "train" / "class_000" / "class_000_0001.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (root / "train" / "class_001" / "class_001_0002.jpg").write_bytes(b"")
    dataset = create_image_dataset("", root, "train", True)
    dataset.transform = lambda image: torch.tensor(image.size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2)
    sizes = torch.cat([x for x, _ in loader])
    assert sizes.shape == (8, 2) and (sizes == 8).all()
    assert dataset.take_skipped() == 2
    assert dataset.take_skipped() == 0


def test_loader_workers_outlive_a_stop_signal(tmp_path: Path) -> None:
    """A scheduler signals the whole process group; the workers must leave stopping to the main process."""
    root = write_image_folder(tmp_path / "d", classes=2, images_per_class=3, size=8, splits=("val",))
    dataset = create_image_dataset("", root, "val", False)
    config = dict(input_size=(3, 8, 8), interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    loader = create_eval_loader(dataset, config, batch_size=2, workers=1, device=torch.device("cpu"),
                                distributed=False, use_prefetcher=False)
    transform = dataset.transform

    def signalled_transform(image):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        return transform(image)
    dataset.transform = signalled_transform
    assert sum(len(y) for _, y in loader) == 6


def test_a_skipped_pass_keeps_the_positions_of_the_samples_it_yields() -> None:
    """With positions, the samples after a skip carry their positions in the whole pass (their seeds in loader
    processes), and `then` runs after the skip."""
    calls = []
    sampler = SkippableSampler(list(range(10, 16)), positions=True)  # any iterable of indices
    sampler.skip_next(2, then=lambda: calls.append("then"))
    assert list(sampler) == [(2, 12), (3, 13), (4, 14), (5, 15)] and calls == ["then"]
    assert list(sampler) == list(enumerate(range(10, 16)))  # the skip applies to one pass
    assert list(SkippableSampler([7, 8])) == [7, 8]
