"""kernel_registers.py without a GPU: the mix kernels compiled for sm_90 at a small shape.

The script runs in a subprocess because it compiles real kernels, while this test session may
run Triton's interpreter (TRITON_INTERPRET is read once, at import)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernel_registers.py"


def _has_ptxas() -> bool:
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        tool = get_ptxas(90) if "arch" in get_ptxas.__code__.co_varnames else get_ptxas()
        return Path(tool.path if hasattr(tool, "path") else tool[0]).is_file()
    except Exception:  # no NVIDIA backend or no bundled ptxas
        return False


def _report(*options: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--batch", "1", "--length", "16", "--heads", "2", "--headdim", "16",
         "--d-state", "16", "--dtypes", "bf16", *options],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_forward_kernel_reports_registers() -> None:
    records = _report("--kernels", "mix_fwd", "dt_fwd")
    assert records[0]["kind"] == "header" and records[0]["target"] == "cuda sm_90 warp 32"
    rows = records[1:]
    assert {r["kernel"] for r in rows} == {"mix_fwd", "dt_fwd"}
    fwd = [r for r in rows if r["kernel"] == "mix_fwd"]
    assert fwd and all(r["BLOCK"] == 16 for r in fwd)  # Q = 16: only 16-row tiles survive pruning
    for r in rows:
        assert 0 < r["n_regs"] <= 255 and r["n_spill_stores"] >= 0 and r["shared"] >= 0, r


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
@pytest.mark.parametrize("variant", [("--diag", "head"), ("--diag", "none", "--no-shift"),
                                     ("--length", "48", "--chunk-size", "16")], ids=str)
def test_mix_kernels_compile_for_every_diagonal_mode_and_with_states(variant) -> None:
    """The compiler, unlike the interpreter, rejects e.g. a helper that returns a scalar in one branch and
    a column in the other (a per-head D once compiled only in the interpreter), or a variable whose shape
    changes in a branch of the state-passing code, which only lengths of several chunks compile (a dx
    kernel variant once passed the interpreter and the one-chunk compile and failed on the GPU, session 37)."""
    records = _report("--kernels", "mix_fwd", "mix_pairs", "mix_dx", "mix_bc", *variant)
    assert {r["kernel"] for r in records[1:]} == {"mix_fwd", "mix_pairs", "mix_dx", "mix_bc"}


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_tile_stores_are_element_by_element_when_the_length_is_off_16() -> None:
    """The pair kernel's fp32 dS tiles are stored in vectors when L is a multiple of 16 and element by element
    when it is not: the int L then carries no divisibility hint, so the mask cols < L is not known to be
    uniform over a vector (RESULTS.md, session 17). Storing whole rows instead made the stores vectors but
    moved more bytes, and the mixer got slower on the H200 (session 18), so those masks stay. The group's
    products S, read by every head, are stored up to L rounded up to 16 (session 31): vectors at any length."""
    def stores(length: int) -> list[tuple[int, int]]:
        rows = _report("--length", str(length), "--kernels", "mix_pairs")[1:]
        assert rows and all(r["ld_vector"] + r["ld_scalar"] > 0 for r in rows)
        return [(r["st_vector"], r["st_scalar"]) for r in rows]

    whole, ragged = stores(32), stores(30)
    assert all(vector > 0 for vector, _ in whole)
    assert all(vector > 0 and scalar > scalar_32 for (vector, scalar), (_, scalar_32) in zip(ragged, whole))


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_every_head_reads_the_group_products_in_vectors_at_any_length() -> None:
    """The forward and dx kernels load S tiles masked on L rounded up to 16, which Triton knows to be uniform
    over a vector, so they compile to the same vector and scalar loads at L = 30 as at 32 (masked on L, every
    element of an S tile was its own load at 30)."""
    def loads(length: int) -> list[tuple[str, int, int]]:
        rows = _report("--length", str(length), "--kernels", "mix_fwd", "mix_dx")[1:]
        return [(r["kernel"], r["ld_vector"], r["ld_scalar"]) for r in rows]

    assert loads(30) == loads(32)


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_dt_kernels_move_their_rows_in_vectors_at_any_length() -> None:
    """The per-token fp32 rows (dt, prefix sums, R, K') are allocated at L rounded up to 16 and read and
    written whole, so the dt kernels' accesses along the sequence are vectors at L = 30 as at 32 (with rows of
    length L they were element by element: 0 vector stores in the forward, 52 scalar loads in the backward)."""
    counts = {}
    for length in (32, 30):
        for r in _report("--length", str(length), "--heads", "16", "--kernels", "dt_fwd", "dt_bwd")[1:]:
            counts[length, r["kernel"]] = (r["ld_vector"], r["ld_scalar"], r["st_vector"], r["st_scalar"])
    assert counts[30, "dt_fwd"] == counts[32, "dt_fwd"] and counts[30, "dt_fwd"][2] > counts[30, "dt_fwd"][3]
    assert counts[30, "dt_bwd"] == counts[32, "dt_bwd"] and counts[30, "dt_bwd"][0] > counts[30, "dt_bwd"][1]


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_sass_reports_the_loops_of_a_kernel_that_walks_rows() -> None:
    """--sass: the gated norm's backward walks its rows in a loop, the LayerNorm's forward (a row per program)
    has none; each loop's instruction count is within the kernel's and its opcodes are SASS mnemonics."""
    records = [r for r in _report("--kernels", "norm_bwd", "ln_fwd", "--sass") if r.get("kernel")]
    walking = [r for r in records if r["kernel"] == "norm_bwd"]
    assert walking and all(r["loops"] for r in walking)
    for r in walking:
        for loop in r["loops"]:
            assert 0 < loop["instructions"] < r["sass_instructions"]
            assert sum(loop["top"].values()) <= loop["instructions"]
            assert all(op.isupper() for op in loop["top"])
    assert all(not r["loops"] for r in records if r["kernel"] == "ln_fwd")


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_the_diagonal_backward_compiles_every_config_without_spills_in_bf16() -> None:
    """The per-token diagonal's backward (two dots a tile, the weight block and dw held across the walk) fits its
    registers in every autotune config."""
    rows = [r for r in _report("--heads", "24", "--headdim", "64", "--kernels", "diag_bwd") if r.get("kernel")]
    assert len(rows) == 4
    for r in rows:
        assert r["n_regs"] <= 255 and r["n_spill_stores"] == 0, r


@pytest.mark.skipif(not _has_ptxas(), reason="Triton's bundled ptxas is missing")
def test_maxnreg_caps_every_config_and_is_reported() -> None:
    """--maxnreg compiles each config under ptxas's register cap: a kernel that takes more registers uncapped
    (the gated norm's backward, ~200 at its real width) is held to the cap, and every row reports the cap."""
    def rows(*options: str) -> list[dict]:
        return [r for r in _report("--heads", "24", "--headdim", "64", "--kernels", "norm_bwd", *options)
                if r.get("kernel")]

    free, capped = rows(), rows("--maxnreg", "96")
    assert free and all(r["n_regs"] > 96 for r in free)
    assert len(capped) == len(free)
    for f, c in zip(free, capped):  # a lower cap of the kernel's own would stay
        assert c["maxnreg"] == min(f["maxnreg"] or 96, 96) and c["n_regs"] <= c["maxnreg"], (f, c)
