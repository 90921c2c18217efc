"""Continuing an interrupted epoch: the train loader's sampler skips the batches already trained.

The sampler of the loader's `BatchSampler` is wrapped once. On the pass after `skip_next(n,
then)` it draws the inner sampler's whole order as usual (a RandomSampler takes its seed from
torch's generator at the same moment as in an uninterrupted pass, a DistributedSampler uses its
epoch), drops the first `n` indices unread (nothing is decoded), calls `then` (the trainer
restores the generator states of the moment the run stopped) and yields the rest. With
`--workers 0` the resumed epoch is then exactly the uninterrupted one. For a dataset that
`takes_positions` (`data.CountingImageDataset`) the indices go out as (position in the pass,
index), and loader processes seed each sample's augmentation from its position: with any
`--workers` the resumed epoch is the uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from timm.data.loader import PrefetchLoader
from torch.utils.data import IterableDataset, Sampler

__all__ = ["SkippableSampler", "skippable_sampler"]


class SkippableSampler(Sampler):
    """`inner`'s indices (with `positions`: (position, index) pairs); after `skip_next(n, then)`, the next
    pass leaves out its first `n`."""

    def __init__(self, inner: Sampler[int], positions: bool = False) -> None:
        self.inner = inner
        self.positions = positions
        self._skip = 0
        self._then: Callable[[], None] | None = None

    def skip_next(self, count: int, then: Callable[[], None] | None = None) -> None:
        """Leave out the first `count` indices of the next pass, then call `then()` before the rest."""
        self._skip, self._then = count, then

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        skip, then = self._skip, self._then
        self._skip, self._then = 0, None
        indices = enumerate(self.inner) if self.positions else iter(self.inner)
        if skip:
            next(islice(indices, skip, skip), None)  # consume `skip` indices
        if then is not None:
            then()
        yield from indices

    def __len__(self) -> int:
        return len(self.inner)  # the whole pass: the epoch's batch count does not change on resume


def skippable_sampler(loader: Any) -> SkippableSampler | None:
    """Wrap the sampler of a map-style train loader (or timm PrefetchLoader) once and return the
    wrapper; None for loaders without one (iterable datasets), whose epochs restart instead."""
    base = loader.loader if isinstance(loader, PrefetchLoader) else loader
    batch_sampler = getattr(base, "batch_sampler", None)
    if isinstance(getattr(base, "dataset", None), IterableDataset) or not hasattr(batch_sampler, "sampler"):
        return None
    if not isinstance(batch_sampler.sampler, SkippableSampler):
        positions = getattr(base.dataset, "takes_positions", False)
        batch_sampler.sampler = SkippableSampler(batch_sampler.sampler, positions=positions)
    return batch_sampler.sampler
