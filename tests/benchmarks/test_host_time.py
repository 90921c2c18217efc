"""host_time.py on CPU: a step's host time with the Triton kernels recorded, not run.

In a subprocess: the script imports kernel_registers.py, which sets TRITON_INTERPRET for its process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "host_time.py"


def test_hydra_step_records_fifteen_launches_per_block_and_deit_none() -> None:
    res = subprocess.run([sys.executable, str(SCRIPT), "--models", "hydra_vit_tiny", "deit_tiny_patch16_224",
                          "--steps", "2"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    header, hydra, deit = (json.loads(line) for line in res.stdout.splitlines() if line.strip())
    assert header["kind"] == "header"
    # per block: forward LayerNorm, conv, dt, group products, mix, norm; backward norm, mix pairs + dx + bc, dt,
    # the conv forward again (the fused layer recomputes its output), the diagonal's pass, conv backward, LayerNorm
    assert hydra["triton_launches"] == 15 * 20 and deit["triton_launches"] == 0
    assert hydra["host_ms"] > 0 and deit["host_ms"] > 0
