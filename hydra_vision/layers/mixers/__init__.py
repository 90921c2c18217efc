"""The matrix-mixer family: every sequence mixer of the Hydra paper's comparisons (arXiv 2407.09941,
Tables 2, 3, 5, 10) and Monarch, as drop-in mixers of the same block, chosen by name.

`create_mixer(name, dim, **kwargs)` builds one; the model passes its shared settings (d_state,
d_conv, expand, headdim, ngroups, chunk_size, backend, max_seq_len) to every mixer, and each mixer
takes the ones it has (a data-independent mixer needs max_seq_len, the others ignore it); any other
keyword goes to the mixer's constructor, so a wrong one raises its TypeError. docs/mixers.md has
the table of what each mixer is.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, Literal, get_args

from torch import nn

from ..hydra_mixer import Hydra
from ..matrix_mixer import MatrixMixer
from .attention import LinearAttention, SoftmaxAttention
from .base import GroupMatrixMixer
from .cauchy import Cauchy
from .dense import Dense
from .learned_mixer import LearnedMixer
from .low_rank import LowRank
from .monarch import Monarch
from .pair_mixer import PairMixer
from .ssd import (
    AddDiagSSD,
    AddShiftSSD,
    AddSSD,
    BidirectionalSSD,
    CausalSSD,
    ConcatSSD,
    MultSSD,
    QuasiseparableSSD,
    ScanSSD,
    SSDMixer,
)
from .toeplitz import Toeplitz
from .vandermonde import Vandermonde

__all__ = [
    "MIXERS", "SHARED_SETTINGS", "MixerType", "create_mixer",
    "AddDiagSSD", "AddSSD", "AddShiftSSD", "BidirectionalSSD", "Cauchy", "CausalSSD", "ConcatSSD", "Dense",
    "GroupMatrixMixer", "LearnedMixer", "LinearAttention", "LowRank", "MatrixMixer", "Monarch", "MultSSD",
    "PairMixer", "QuasiseparableSSD", "SSDMixer", "ScanSSD", "SoftmaxAttention", "Toeplitz", "Vandermonde",
]

MixerType = Literal[
    'quasiseparable', 'add', 'add_shift', 'add_diag', 'mult', 'concat', 'causal',
    'attention', 'linear_attention',
    'dense', 'toeplitz_dd', 'toeplitz_di', 'vandermonde_dd', 'vandermonde_di', 'cauchy_dd', 'cauchy_di',
    'low_rank_dd', 'low_rank_di', 'monarch',
]

MIXERS: Dict[str, Callable[..., nn.Module]] = {
    'quasiseparable': Hydra,
    'add': AddSSD,
    'add_shift': AddShiftSSD,
    'add_diag': AddDiagSSD,
    'mult': MultSSD,
    'concat': ConcatSSD,
    'causal': CausalSSD,
    'attention': SoftmaxAttention,
    'linear_attention': LinearAttention,
    'dense': Dense,
    'toeplitz_dd': functools.partial(Toeplitz, data_dependent=True),
    'toeplitz_di': functools.partial(Toeplitz, data_dependent=False),
    'vandermonde_dd': functools.partial(Vandermonde, data_dependent=True),
    'vandermonde_di': functools.partial(Vandermonde, data_dependent=False),
    'cauchy_dd': functools.partial(Cauchy, data_dependent=True),
    'cauchy_di': functools.partial(Cauchy, data_dependent=False),
    'low_rank_dd': functools.partial(LowRank, data_dependent=True),
    'low_rank_di': functools.partial(LowRank, data_dependent=False),
    'monarch': Monarch,
}

SHARED_SETTINGS = ('d_state', 'd_conv', 'expand', 'headdim', 'ngroups', 'chunk_size', 'backend', 'max_seq_len')


@functools.lru_cache(maxsize=None)
def _accepted(name: str) -> frozenset:
    return frozenset(inspect.signature(MIXERS[name]).parameters)


def create_mixer(mixer: MixerType, dim: int, **kwargs: Any) -> nn.Module:
    """The sequence mixer named `mixer` for width `dim`.

    Shared settings (SHARED_SETTINGS) that the mixer does not take are dropped; every other keyword
    (device, dtype, mixer-specific options) goes to its constructor.

    Raises:
        ValueError: unknown mixer name (or bad settings, from the mixer).
        TypeError: a keyword the mixer does not take.
    """
    if mixer not in MIXERS:
        raise ValueError(f"unknown mixer {mixer!r}; choose one of {', '.join(map(repr, get_args(MixerType)))}")
    accepted = _accepted(mixer)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted or k not in SHARED_SETTINGS}
    return MIXERS[mixer](dim, **kwargs)
