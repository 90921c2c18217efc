"""memory_peak.py's replay of an allocation trace, on synthetic events (the recording itself needs CUDA)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_peak.py"


@pytest.fixture(scope="module")
def memory_peak():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("memory_peak", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def frame(filename: str, line: int, name: str) -> dict:
    return {"filename": filename, "line": line, "name": name}


KERNEL = [frame("/usr/lib/torch/functional.py", 10, "empty"),
          frame("/site-packages/hydra_vision/kernels/quasiseparable/triton_mix.py", 170, "_backward"),
          frame("/work/benchmarks/bench_models.py", 118, "step")]
ENGINE = [frame("/work/benchmarks/bench_models.py", 118, "step")]
INDUCTOR = [frame("/tmp/torchinductor_root/ab/cabcd.py", 900, "call"), frame("/usr/lib/torch/_dynamo/eval.py", 5, "_fn")]


def alloc(addr: int, size: int, frames: list[dict]) -> dict:
    return {"action": "alloc", "addr": addr, "size": size, "frames": frames}


def free(addr: int, size: int) -> dict:
    return {"action": "free_requested", "addr": addr, "size": size}


def test_replay_finds_the_peak_and_what_is_live_there(memory_peak):
    events = [
        alloc(1, 100, ENGINE), alloc(2, 300, KERNEL), free(1, 100),  # 400, then 300
        alloc(3, 250, INDUCTOR), alloc(4, 50, KERNEL),  # 600: the peak
        free(2, 300), alloc(5, 200, ENGINE),  # 500
        {"action": "free_completed", "addr": 2, "size": 300},  # already freed: ignored
        free(99, 10),  # freed block allocated before the trace: ignored
    ]
    peak, blocks = memory_peak.live_at_peak(events)
    assert peak == 600 and sorted(b["addr"] for b in blocks) == [2, 3, 4]


def test_blocks_are_grouped_by_their_innermost_marked_frame_and_inductors_by_graph(memory_peak):
    blocks = [alloc(2, 300, KERNEL), alloc(3, 250, INDUCTOR), alloc(4, 50, KERNEL), alloc(6, 40, []),
              alloc(7, 30, [frame("/usr/lib/torch/x.py", 3, "f")]),
              alloc(8, 20, [frame("/tmp/torchinductor_root/ab/cabcd.py", 1200, "call")])]
    groups = memory_peak.by_site(blocks)
    assert [(g["site"], g["bytes"], g["blocks"]) for g in groups] == [
        ("triton_mix.py:170 _backward", 350, 2), ("inductor graph cabcd.py", 270, 2), ("?", 40, 1), ("x.py:3 f", 30, 1)]


def test_needs_cuda(memory_peak, monkeypatch):
    monkeypatch.setattr(memory_peak.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        memory_peak.main([])
