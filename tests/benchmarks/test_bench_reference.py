"""bench_reference.py on CPU: one JSON line per (length, mode, case), the dispatcher's chunk named."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_reference  # noqa: E402


def test_every_case_is_one_line_with_its_chunk(tmp_path, capsys):
    out = tmp_path / "ref.jsonl"
    argv = ["--lengths", "40", "70", "--chunks", "16", "32", "--tokens", "80", "--d-model", "32", "--headdim", "16",
            "--d-state", "8", "--reps", "2", "--out", str(out)]
    assert bench_reference.main(argv) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["kind"] == "header" and records[0]["device"] == "cpu" and records[0]["H"] == 4
    cases = records[1:]
    assert [(r["L"], r["mode"], r["case"]) for r in cases] == [
        (L, mode, case) for L in (40, 70) for mode in ("fwd", "fwdbwd") for case in ("Q16", "Q32", "dispatch")]
    assert {r["batch"] for r in cases if r["L"] == 40} == {2} and {r["batch"] for r in cases if r["L"] == 70} == {1}
    assert all(r["Q"] == 16 for r in cases if r["case"] == "dispatch")  # reference_chunk(L, 8, 256): (L N)^(1/3) < 11
    assert all(r["ms"] > 0 and r["tokens_s"] == round(r["batch"] * r["L"] / r["ms"] * 1e3) for r in cases)
    assert capsys.readouterr().out.count("\n") == len(records)
