"""ncu_stalls.py on a source-page CSV laid out as `ncu --page source --csv --print-source sass` writes it."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ncu_stalls  # noqa: E402

HEADER = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed",
          "stall_long_sb", "stall_wait", "stall_long_sb (Not Issued)"]
ROWS = [  # address, SASS line, samples, executed, long_sb, wait, long_sb not issued (must be ignored)
    ["0x10", "      HMMA.16816.F32.BF16 R4, R8, R12, R4", "30", "100", "10", "20", "99"],
    ["0x20", "@!P0 LDG.E.128 R8, desc[UR4][R2.64]", "60", "50", "60", "0", "99"],
    ["0x30", "      FMUL R1, R2, R3", "10", "850", "0", "10", "99"],
]


def _csv(tmp_path: Path) -> Path:
    lines = ['"Kernel Name","chunk_bwd_pairs_kernel",'] + [",".join(f'"{v}"' for v in row) for row in [HEADER, *ROWS]]
    path = tmp_path / "ncu_source_chunk_bwd_pairs_kernel.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shares_by_reason_opcode_and_executed(tmp_path) -> None:
    text = ncu_stalls.summarize(_csv(tmp_path))
    head, reasons, opcodes, executed = text.splitlines()
    assert head.endswith(": 100 samples")
    assert reasons.split(": ", 1)[1] == "long_sb 70.0%, wait 30.0%"  # 70 and 30 of 100; "Not Issued" left out
    assert opcodes.split(": ", 1)[1] == "LDG 60.0%, HMMA 30.0%, FMUL 10.0%"  # the predicate is not the opcode
    assert executed.split(": ", 1)[1] == "FMUL 85.0%, HMMA 10.0%, LDG 5.0%"


def test_a_csv_without_stall_samples_is_named(tmp_path) -> None:
    path = tmp_path / "details.csv"
    path.write_text('"Kernel Name","x",\n"Address","Source"\n')
    try:
        ncu_stalls.summarize(path)
    except SystemExit as exc:
        assert "details.csv" in str(exc) and "--page source" in str(exc)
    else:
        raise AssertionError("no error for a CSV without stall samples")
