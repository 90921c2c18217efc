"""The chunk length Q of the Triton mix (`chunk_length`), its choice by sequence length
(`chunk_size="auto"`, the models' default) and by timing per device and shape (`chunk_size=None`).

For a new key (device, dtype, x's shape, G, N, both directions or one, shift, D's kind) the
caller's forward + backward runs once per distinct Q that CANDIDATES give at this L (none when the
sequence fits one chunk of every candidate) on the call's own inputs, and the fastest is kept for
the process. The result of the mix does not depend on Q (`chunk_length`), only its speed. In
Triton's interpreter and while torch.compile traces, nothing is timed: a tuned value is reused if
the key has one, else DEFAULT_CHUNK.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
import triton

from ..host_math import next_power_of_2
from .triton_config import interpreting

__all__ = ["AUTO", "CANDIDATES", "DEFAULT_CHUNK", "LONG_CHUNK", "auto_chunk_size", "chunk_length",
           "resolve_chunk_size", "tuned_chunk_size"]

CANDIDATES = (64, 128, 256)
DEFAULT_CHUNK = 256
LONG_CHUNK = 64
AUTO = "auto"
_tuned: dict[Hashable, int] = {}


def chunk_length(L: int, chunk_size: int) -> int:
    """The kernels' chunk Q: chunk_size rounded down to a power of two in [16, 256]; one chunk of
    next_power_of_2(L) (at least 16) when the sequence fits. The result does not depend on Q."""
    Q = min(256, max(16, 1 << (max(int(chunk_size), 1).bit_length() - 1)))
    return max(16, next_power_of_2(L)) if L <= Q else Q


def auto_chunk_size(L: int) -> int:
    """chunk_size "auto": DEFAULT_CHUNK up to 256 tokens (one chunk: at ViT lengths a head's whole
    quasiseparable matrix is one dense block), LONG_CHUNK beyond. hydra_vit_base's training step on an
    H200 (RESULTS.md, session 23): chunks of 64 take 15-18% off its GPU time at 512, 1,024 and 2,048 px
    and add 18% at 224 px."""
    return DEFAULT_CHUNK if L <= DEFAULT_CHUNK else LONG_CHUNK


def resolve_chunk_size(chunk_size: int | str | None, L: int) -> int | str | None:
    """The chunk_size the kernels take for a sequence of L tokens: "auto" -> `auto_chunk_size(L)`; anything
    else unchanged (ints and None are valid, other values fail the input checks)."""
    return auto_chunk_size(L) if chunk_size == AUTO else chunk_size


def _time_ms(fn: Callable[[], object]) -> float:
    """Median time of fn() in ms (CUDA events, Triton's do_bench)."""
    return triton.testing.do_bench(fn, warmup=5, rep=25)


def tuned_chunk_size(key: Hashable, L: int, run: Callable[[int], object]) -> int:
    """The chunk_size for `key`: the fastest `run(chunk_size)` among CANDIDATES with distinct
    chunk_length(L, chunk_size), timed once per key and process."""
    options = list({chunk_length(L, q): q for q in CANDIDATES}.values())
    if len(options) == 1:
        return options[0]
    if key in _tuned:
        return _tuned[key]
    if interpreting() or torch.compiler.is_compiling():
        return DEFAULT_CHUNK
    _tuned[key] = min(options, key=lambda q: _time_ms(lambda: run(q)))
    return _tuned[key]
