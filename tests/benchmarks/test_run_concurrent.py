"""benchmarks/run_concurrent.sh's throughput step: one timed step per experiment, with the run's options."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Stands in for python3: records each call's arguments and appends a record named by --label.
STUB = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$CALLS"
label=""; out=""
while (( $# )); do case $1 in --label) label=$2; shift ;; --out) out=$2; shift ;; esac; shift; done
echo "{\\"kind\\": \\"train_step\\", \\"config\\": \\"$label\\", \\"images_per_s\\": 1.0}" >> "$out"
"""


def _measure(tmp_path: Path, *jobs: str) -> list[str]:
    bin_dir, runs = tmp_path / "bin", tmp_path / "runs"
    bin_dir.mkdir()
    runs.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(STUB)
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "RUNS": str(runs), "STOP": "600", "OPTIONS": "--device cpu"}
    script = '. benchmarks/run_concurrent.sh; START=$(date +%s); measure_throughput "$@"'
    result = subprocess.run(["bash", "-c", script, "_", *jobs], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    calls = tmp_path / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_one_step_per_experiment_with_its_options_but_seed_and_length(tmp_path: Path) -> None:
    calls = _measure(tmp_path,
                     "hydra_vit_tiny_ep100-s0=configs/imagewoof/hydra_vit_tiny.yaml --seed 0 --epochs 100 "
                     "--torchcompile --torchcompile-mode reduce-overhead",
                     "hydra_vit_tiny_ep100-s1=configs/imagewoof/hydra_vit_tiny.yaml --seed 1 --epochs 100 "
                     "--torchcompile --torchcompile-mode reduce-overhead",
                     "deit_tiny=configs/imagewoof/deit_tiny.yaml --amp-dtype float16")
    assert len(calls) == 2
    graphs, fp16 = calls
    assert "--label hydra_vit_tiny_ep100 " in graphs and "--configs configs/imagewoof/hydra_vit_tiny.yaml" in graphs
    assert graphs.endswith("--options --device cpu --torchcompile --torchcompile-mode reduce-overhead")
    assert "--label deit_tiny " in fp16 and fp16.endswith("--options --device cpu --amp-dtype float16")
    records = [json.loads(line) for line in (tmp_path / "runs" / "throughput.jsonl").read_text().splitlines()]
    assert [r["config"] for r in records] == ["hydra_vit_tiny_ep100", "deit_tiny"]


def test_experiments_timed_already_are_skipped(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "throughput.jsonl").write_text('{"kind": "train_step", "config": "deit_tiny", "images_per_s": 5.0}\n')
    assert _measure(tmp_path, "deit_tiny-s0=configs/imagewoof/deit_tiny.yaml --seed 0") == []
