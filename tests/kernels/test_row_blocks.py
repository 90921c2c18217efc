"""The grid-sizing helpers shared by the row-wise kernels: the SM count asked once per device."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hydra_vision.kernels import row_blocks


def test_sm_count_asks_torch_once_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def properties(index: int) -> SimpleNamespace:
        asked.append(index)
        return SimpleNamespace(multi_processor_count=100 + index)

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    row_blocks._sm_count.cache_clear()
    try:
        counts = [row_blocks.sm_count(torch.device("cuda", 1)), row_blocks.sm_count(torch.device("cuda")),
                  row_blocks.sm_count(torch.device("cuda", 0)), row_blocks.sm_count(torch.device("cuda", 1))]
    finally:
        row_blocks._sm_count.cache_clear()  # the fake's counts must not outlive the test
    assert counts == [101, 101, 100, 101]
    assert asked == [1, 0]
