"""Selective activation recomputation around the mix: keep what is costly to redo, recompute the rest.

`recompute_around_mix(fn, *args)` runs fn under non-reentrant activation checkpointing with a
selective policy: the outputs of the fused mix op (`hydra_vision::ssd_mix`: y and its decay sums)
are kept, every other operator inside fn runs again in backward. Around a mixer's
conv -> mix -> gated norm -> out_proj this drops the conv output (the mix's x, B, C) and the norm
output (out_proj's input), about a third of a Hydra block's saved activations at width 768, for
one conv, one norm and one out_proj forward more per block. A mix that is not the fused op (the
`reference` backend, other mixers) is recomputed whole: the same saving, at the cost of its forward.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

__all__ = ["KEPT_OPS", "recompute_around_mix"]

KEPT_OPS = frozenset({"hydra_vision::ssd_mix"})  # operators whose outputs are stored, not recomputed


def _policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    name = op.name() if hasattr(op, "name") else str(op)
    return CheckpointPolicy.MUST_SAVE if name in KEPT_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def recompute_around_mix(fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
    """fn(*args), storing only the fused mix's outputs (and the inputs) for backward."""
    contexts = functools.partial(create_selective_checkpoint_contexts, _policy)
    return checkpoint(fn, *args, use_reentrant=False, context_fn=contexts)
