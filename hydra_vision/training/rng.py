"""Random number generator states as plain tensors and Python types (checkpoint-safe).

The states of Python's `random`, NumPy's global generator, torch's CPU generator and the
current CUDA device's generator; `torch.load(weights_only=True)` reads them back.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seed_rng_from"]


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """The generator states that training draws from on this process."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Set the generators to a state from `capture_rng_state`."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_rng_from(*key: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch's CPU generator from non-negative
    integers `key` (mixed by NumPy's SeedSequence: nearby keys give unrelated streams)."""
    words = np.random.SeedSequence(list(key)).generate_state(2)
    seed = int(words[0]) << 32 | int(words[1])
    random.seed(seed)
    np.random.seed(words)
    torch.manual_seed(seed)
