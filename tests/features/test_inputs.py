"""list_images: folder (class layout or not), file list, glob, and clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from hydra_vision.features import list_images

from .conftest import CLASSES


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_class_layout_gives_sorted_paths_and_labels(tmp_path: Path):
    expected = [_touch(tmp_path / c / sub / f"{i}.jpg") for c in CLASSES for sub in ("", "deep") for i in (0, 1)]
    _touch(tmp_path / "dog" / "notes.txt")
    images = list_images(tmp_path)
    assert images.paths == sorted(expected)
    assert images.classes == list(CLASSES)
    assert images.labels == [0] * 4 + [1] * 4 + [2] * 4


def test_flat_folder_is_recursive_and_unlabelled(tmp_path: Path):
    expected = [_touch(tmp_path / "a.png"), _touch(tmp_path / "b.JPEG"), _touch(tmp_path / "sub" / "c.jpg")]
    images = list_images(tmp_path)
    assert images.paths == expected
    assert images.labels == [-1, -1, -1] and images.classes == []


def test_no_labels_ignores_class_folders(tmp_path: Path):
    expected = [_touch(tmp_path / c / "0.jpg") for c in CLASSES]
    images = list_images(tmp_path, labels=False)
    assert images.paths == expected and images.labels == [-1] * 3 and images.classes == []


def test_file_list_with_and_without_class_names(tmp_path: Path):
    (tmp_path / "plain.txt").write_text("x/1.jpg\n\n/abs/2.jpg\n")
    images = list_images(tmp_path / "plain.txt")
    assert images.paths == [str(tmp_path / "x" / "1.jpg"), "/abs/2.jpg"] and images.labels == [-1, -1]
    (tmp_path / "named.lst").write_text("1.jpg\tzebra\n2.jpg\tant\n3.jpg\tzebra\n")
    images = list_images(tmp_path / "named.lst")
    assert images.classes == ["ant", "zebra"] and images.labels == [1, 0, 1]


def test_file_list_mixing_named_and_unnamed_lines_is_an_error(tmp_path: Path):
    (tmp_path / "mixed.txt").write_text("1.jpg\tant\n2.jpg\n")
    with pytest.raises(ValueError, match="some lines have a class name"):
        list_images(tmp_path / "mixed.txt")


def test_glob_is_recursive(tmp_path: Path):
    expected = [_touch(tmp_path / "a" / "1.jpg"), _touch(tmp_path / "a" / "b" / "2.jpg")]
    _touch(tmp_path / "a" / "3.png")
    assert list_images(str(tmp_path / "**" / "*.jpg")).paths == expected


def test_empty_folder_is_an_error(tmp_path: Path):
    _touch(tmp_path / "cat" / "readme.txt")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)


def test_missing_source_and_unknown_file_kind_are_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no folder, image list or glob"):
        list_images(tmp_path / "missing")
    _touch(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="not an image list"):
        list_images(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="no images"):
        list_images(str(tmp_path / "*.jpg"))
