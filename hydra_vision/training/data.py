"""Datasets and loaders from timm's pieces, with input checks and a count of unreadable images.

Folder datasets (`--dataset ''`, the ImageNet layout `<root>/<split>/<class>/<image>`) are
checked before use: a missing root or split, and class folders without images, are clear
errors; the eval split uses the train split's class indices. timm's `ImageDataset` already
skips an unreadable image (warning, then the next index); `CountingImageDataset` also counts
those skips across DataLoader worker processes.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from timm.data import FastCollateMixup, ImageDataset, Mixup, create_dataset, create_loader
from timm.data.loader import PrefetchLoader
from timm.data.dataset_factory import _search_split
from timm.data.readers.img_extensions import get_img_extensions

from .rng import seed_rng_from

__all__ = [
    "CountingImageDataset",
    "find_split_folder",
    "create_image_dataset",
    "class_names_of",
    "mixup_args",
    "create_train_loader",
    "create_eval_loader",
    "ending_new_workers_on_error",
]

_logger = logging.getLogger(__name__)


class _CountingReader:
    """Wraps a timm reader and counts `reader[index]` calls in this process."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.reads = 0

    def __getitem__(self, index: int) -> Any:
        self.reads += 1
        return self.reader[index]

    def __len__(self) -> int:
        return len(self.reader)

    def __getattr__(self, name: str) -> Any:
        if name == "reader":
            raise AttributeError(name)
        return getattr(self.reader, name)


class CountingImageDataset(ImageDataset):
    """timm's ImageDataset that counts skipped (unreadable) images in shared memory, and seeds the
    augmentation of each sample in a loader process from its position in the epoch.

    timm retries an unreadable sample with the next index, reading the reader once more per
    skip, so the skips of one `__getitem__` are its extra reads. Items may be (position, index)
    pairs (`resume_sampler.SkippableSampler`): in a loader process the generators are then seeded
    from the processes' shared epoch seed and the position before the transform, so a sample's
    augmentation (and a collate's mixup draws) do not depend on which process makes it or on the
    batches before it: an epoch resumed after its first batches equals the uninterrupted one.
    """

    takes_positions = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader = _CountingReader(self.reader)
        self._skipped = multiprocessing.get_context().Value("q", 0)

    def __getitem__(self, item: int | tuple[int, int]) -> Any:
        index = item
        if isinstance(item, tuple):
            position, index = item
            worker = torch.utils.data.get_worker_info()
            if worker is not None:
                seed_rng_from(worker.seed - worker.id, position)
        reads = self.reader.reads
        sample = super().__getitem__(index)
        extra = self.reader.reads - reads - 1
        if extra:
            with self._skipped.get_lock():
                self._skipped.value += extra
        return sample

    def take_skipped(self) -> int:
        """Skipped images since the last call (all worker processes), and reset the count."""
        with self._skipped.get_lock():
            count, self._skipped.value = self._skipped.value, 0
        return count


def _has_image(folder: str, extensions: set[str]) -> bool:
    for _, _, files in os.walk(folder, followlinks=True):
        if any(os.path.splitext(f)[1].lower() in extensions for f in files):
            return True
    return False


_SPLIT_NAMES = frozenset({"train", "training", "val", "validation", "valid", "eval", "evaluation", "test"})


def find_split_folder(root: str | Path, split: str) -> Path:
    """The folder of `split` under an ImageFolder root (timm's search: `split`, then its synonyms).

    Raises:
        FileNotFoundError: `root` is missing.
        ValueError: no image at all, class folders without images, or split folders without this split.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root} (expected <root>/<split>/<class>/<image>)")
    folder = Path(_search_split(str(root), split))
    if folder == root:
        splits = sorted(d.name for d in os.scandir(root) if d.is_dir() and d.name in _SPLIT_NAMES)
        if splits:  # a split layout without this split: the root's folders are splits, not classes
            raise ValueError(f"no '{split}' folder under {root} (nor its synonyms val, valid, eval); "
                             f"it holds {', '.join(splits)}")
        _logger.warning(f"no '{split}' folder under {root}: using the root itself as the {split} split")
    extensions = get_img_extensions(as_set=True)
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    empty = [c for c in classes if not _has_image(str(folder / c), extensions)]
    if empty:
        shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
        raise ValueError(f"{len(empty)} class folder(s) in {folder} hold no images ({shown}); "
                         f"remove them or add images ({', '.join(sorted(extensions))})")
    if not classes and not _has_image(str(folder), extensions):
        raise ValueError(f"no images in {folder} (expected {folder}/<class>/<image>)")
    return folder


def create_image_dataset(name: str, root: str | Path, split: str, is_training: bool,
                         class_map: str | dict[str, int] = "", download: bool = False,
                         batch_size: int = 1, seed: int = 42) -> torch.utils.data.Dataset:
    """The dataset of one split: a checked, counting ImageFolder (`name` "" or "folder"), or any
    timm dataset by name ("torch/cifar10", "hfds/...", ...). A dict `class_map` (the train split's
    class indices) must cover every class folder of the split."""
    if name in ("", "folder"):
        folder = find_split_folder(root, split)
        if isinstance(class_map, dict):
            unknown = sorted(d.name for d in os.scandir(folder) if d.is_dir() and d.name not in class_map)
            if unknown:
                raise ValueError(f"class folder(s) of {folder} unknown to the model's classes: "
                                 f"{', '.join(unknown[:10])}")
        return CountingImageDataset(str(folder), class_map=class_map)
    return create_dataset(name, root=str(root), split=split, is_training=is_training, class_map=class_map,
                          download=download, batch_size=batch_size, seed=seed)


def class_names_of(dataset: torch.utils.data.Dataset) -> list[str] | None:
    """Class names in label order, where the dataset's reader knows them."""
    mapping = getattr(getattr(dataset, "reader", None), "class_to_idx", None)
    if not mapping:
        return None
    return [name for name, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


def _init_worker_ignoring_stop(worker_id: int, init_fn: Callable[[int], None] | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if init_fn is not None:
        init_fn(worker_id)


def _workers_ignore_stop_signals(loader: Any) -> Any:
    """Make the loader's worker processes ignore SIGTERM/SIGINT (a job scheduler or Ctrl-C signals the
    whole process group): the main process stops at a step boundary, then ends its workers."""
    base = loader.loader if isinstance(loader, PrefetchLoader) else loader
    base.worker_init_fn = partial(_init_worker_ignoring_stop, init_fn=base.worker_init_fn)
    return loader


@contextmanager
def ending_new_workers_on_error() -> Iterator[None]:
    """Kill the daemonic processes (loader workers) started inside the block when an error leaves it. The workers
    ignore SIGTERM (`_workers_ignore_stop_signals`), and multiprocessing's exit handler ends daemonic children with
    SIGTERM before joining them: a loader iterator that the error kept alive would keep the process from exiting."""
    before = set(multiprocessing.active_children())
    try:
        yield
    except BaseException:
        for child in set(multiprocessing.active_children()) - before:
            if child.daemon:
                child.kill()
                child.join(timeout=10)
        raise


def mixup_args(args: argparse.Namespace, num_classes: int) -> dict[str, Any] | None:
    """timm Mixup/CutMix arguments, or None when both are off."""
    if not (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None):
        return None
    return dict(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                label_smoothing=args.smoothing, num_classes=num_classes)


def create_train_loader(args: argparse.Namespace, dataset: torch.utils.data.Dataset, data_config: dict[str, Any],
                        num_classes: int, device: torch.device, distributed: bool,
                        use_prefetcher: bool) -> tuple[Any, Mixup | None]:
    """timm's training loader (RandAugment, random erasing, repeated augmentation, mixup/cutmix).

    Workers are not persistent: each epoch's workers take their seeds from the main process's
    generator at that epoch's start, which a checkpoint restores, so a resumed run sees the same
    batches. Returns the loader and the Mixup callable (None when mixup is done in the collate).
    """
    if args.aug_repeats and not distributed:
        raise ValueError("--aug-repeats needs distributed training (torchrun with 2+ processes)")
    mix = mixup_args(args, num_classes)
    if mix and args.batch_size % 2:
        raise ValueError(f"mixup/cutmix pair the images of a batch: --batch-size must be even, got {args.batch_size}")
    collate_fn = FastCollateMixup(**mix) if mix and use_prefetcher else None
    mixup_fn = Mixup(**mix) if mix and not use_prefetcher else None
    interpolation = args.train_interpolation
    if args.no_aug or not interpolation:
        interpolation = data_config["interpolation"]
    loader = create_loader(
        dataset, input_size=data_config["input_size"], batch_size=args.batch_size, is_training=True,
        use_prefetcher=use_prefetcher, no_aug=args.no_aug, re_prob=args.reprob, re_mode=args.remode,
        re_count=args.recount, re_split=args.resplit, scale=args.scale, ratio=args.ratio, hflip=args.hflip,
        vflip=args.vflip, color_jitter=args.color_jitter, auto_augment=args.aa, num_aug_repeats=args.aug_repeats,
        interpolation=interpolation, mean=data_config["mean"], std=data_config["std"], num_workers=args.workers,
        distributed=distributed, collate_fn=collate_fn, pin_memory=args.pin_mem, device=device,
        persistent_workers=False, worker_seeding=args.worker_seeding,
    )
    _workers_ignore_stop_signals(loader)
    if len(loader) == 0:
        raise ValueError(f"the train split has {len(dataset)} images, fewer than one batch of {args.batch_size} "
                         f"per process; lower --batch-size")
    return loader, mixup_fn


def create_eval_loader(dataset: torch.utils.data.Dataset, data_config: dict[str, Any], batch_size: int,
                       workers: int, device: torch.device, distributed: bool, use_prefetcher: bool,
                       pin_memory: bool = False) -> Any:
    """timm's evaluation loader (resize, center crop, normalise); distributed: ordered shards.

    Its workers persist between passes, so an epoch's evaluation does not wait for new worker
    processes. Their seed comes from a private generator: evaluation draws nothing from the global
    RNG, whose state at an epoch's start seeds the training workers (identical after a resume)."""
    loader = _workers_ignore_stop_signals(create_loader(
        dataset, input_size=data_config["input_size"], batch_size=batch_size, is_training=False,
        use_prefetcher=use_prefetcher, interpolation=data_config["interpolation"], mean=data_config["mean"],
        std=data_config["std"], num_workers=workers, distributed=distributed, crop_pct=data_config["crop_pct"],
        crop_mode=data_config.get("crop_mode"), pin_memory=pin_memory, device=device, persistent_workers=True,
    ))
    (loader.loader if isinstance(loader, PrefetchLoader) else loader).generator = torch.Generator()
    return loader
