"""`release_compile_workers` against a real Inductor compile-worker pool: the pool's process exits."""
from __future__ import annotations

import pytest
import torch

from hydra_vision.training.compile_workers import release_compile_workers

async_compile = pytest.importorskip("torch._inductor.async_compile")


def test_release_stops_the_pool_process(monkeypatch) -> None:
    monkeypatch.setattr(torch._inductor.config, "compile_threads", 2)
    release_compile_workers()  # none left from other tests
    pool = async_compile.AsyncCompile.process_pool()  # what torch.compile starts for its first parallel compile
    process = pool.process
    assert process.poll() is None
    assert release_compile_workers() is True
    assert process.wait(timeout=60) is not None
    assert release_compile_workers() is False  # nothing running: nothing to do
