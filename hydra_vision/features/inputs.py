"""Which images to extract: an image folder (class layout optional), a file list, or a glob.

The list is sorted, so the same input always gives the same row order; labels are
indices into `classes` (sorted class names) or -1 where there are none.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from timm.data import get_img_extensions

__all__ = ["ImageList", "list_images"]

GLOB_CHARS = frozenset("*?[")
LIST_SUFFIXES = (".txt", ".lst")


@dataclass(frozen=True)
class ImageList:
    """Image paths with their labels.

    Attributes:
        paths: image paths, in extraction order.
        labels: one class index per path, -1 for unlabelled images.
        classes: class names; `labels[i]` indexes this list.
    """

    paths: list[str]
    labels: list[int]
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in get_img_extensions()


def _walk_images(root: str) -> list[str]:
    """All image files below `root`, recursively, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if _is_image(f))
    return found


def _from_folder(root: str, labels: bool) -> ImageList:
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    top_images = [e for e in entries if e.is_file() and _is_image(e.name)]
    class_dirs = [e for e in entries if e.is_dir()]
    if labels and class_dirs and not top_images:
        paths, targets, classes = [], [], []
        for class_dir in class_dirs:
            class_paths = _walk_images(class_dir.path)
            if class_paths:
                targets.extend([len(classes)] * len(class_paths))
                classes.append(class_dir.name)
                paths.extend(class_paths)
        return ImageList(paths, targets, classes)
    paths = _walk_images(root)
    return ImageList(paths, [-1] * len(paths))


def _from_file_list(list_path: str) -> ImageList:
    """One image per line, `path` or `path<TAB>class name`; relative paths start at the list's folder."""
    base = os.path.dirname(os.path.abspath(list_path))
    rows = []
    for line_no, line in enumerate(Path(list_path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        path, _, name = line.rstrip("\n").partition("\t")
        if not path:
            raise ValueError(f"{list_path}:{line_no}: empty path")
        rows.append((os.path.join(base, path), name))
    names = {name for _, name in rows}
    if names == {""}:
        return ImageList([p for p, _ in rows], [-1] * len(rows))
    if "" in names:
        raise ValueError(f"{list_path}: some lines have a class name after a tab and others do not")
    classes = sorted(names)
    index = {name: i for i, name in enumerate(classes)}
    return ImageList([p for p, _ in rows], [index[name] for _, name in rows], classes)


def _from_glob(pattern: str) -> ImageList:
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p) and _is_image(p))
    return ImageList(paths, [-1] * len(paths))


def list_images(source: str | os.PathLike, labels: bool = True) -> ImageList:
    """Lists the images of `source`.

    Args:
        source: a folder (searched recursively; when it holds only subfolders, each
            subfolder is a class, as in torchvision's ImageFolder), a text file
            (`.txt`/`.lst`, one path per line, optionally `<TAB>class name`), or a glob
            pattern (`**` matches folders recursively).
        labels: read class labels from the folder layout; False labels every image -1.

    Returns:
        The sorted ImageList.

    Raises:
        FileNotFoundError: `source` does not exist.
        ValueError: `source` holds no images, or is neither folder, list nor glob.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        images = _from_folder(source, labels)
    elif os.path.isfile(source) and source.lower().endswith(LIST_SUFFIXES):
        images = _from_file_list(source)
    elif GLOB_CHARS & set(source):
        images = _from_glob(source)
    elif os.path.isfile(source):
        raise ValueError(f"{source!r} is a file but not an image list ({', '.join(LIST_SUFFIXES)})")
    else:
        raise FileNotFoundError(f"no folder, image list or glob matches {source!r}")
    if not images.paths:
        raise ValueError(f"no images ({', '.join(get_img_extensions())}) found in {source!r}")
    if not labels:
        images = ImageList(images.paths, [-1] * len(images))
    return images
