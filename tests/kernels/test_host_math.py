"""The host-side grid helpers agree with Triton's own cdiv and next_power_of_2."""
from __future__ import annotations

import triton

from hydra_vision.kernels.host_math import cdiv, next_power_of_2


def test_cdiv_matches_triton():
    for x in range(0, 700, 7):
        for y in (1, 3, 16, 64, 128, 512):
            assert cdiv(x, y) == triton.cdiv(x, y), (x, y)


def test_next_power_of_2_matches_triton():
    for n in [*range(1, 300), 2**20 - 1, 2**20, 2**20 + 1]:
        assert next_power_of_2(n) == triton.next_power_of_2(n), n
