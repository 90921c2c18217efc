"""Integer helpers for launch grids and block sizes on the host.

`triton.cdiv` and `triton.next_power_of_2` are constexpr functions in Triton 3.6-3.9: called from
Python each unwraps its arguments first (about 2 us a call on the 2-core development CPU, ~20 calls per
Hydra block and step). These are the same integer functions in plain Python.
"""
from __future__ import annotations

__all__ = ["cdiv", "next_power_of_2", "padded_length"]


def cdiv(x: int, y: int) -> int:
    """ceil(x / y) for integers, y > 0."""
    return -(-x // y)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def padded_length(L: int) -> int:
    """L rounded up to a multiple of 16: the row length of the kernels' per-token fp32 arrays, so that Triton,
    which specializes int arguments on divisibility by 16 only, can prove their rows aligned."""
    return cdiv(L, 16) * 16
