"""Where a kernel's warps wait: Nsight Compute's per-instruction stall samples, summed.

Reads the CSV of `ncu --import REPORT --page source --csv --print-source sass -k KERNEL` (one
kernel per file) and prints, per file, the share of the warp-state samples by stall reason
(short_sb: shared memory / MUFU results, long_sb: global or local memory, wait: fixed-latency
dependencies, ...), the share by SASS opcode, and the share of executed instructions by opcode.

    python benchmarks/ncu_stalls.py OUT/ncu_source_chunk_bwd_pairs_kernel.csv [...]
"""
from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def _opcode(source: str) -> str:
    """The SASS opcode of one line ('@P0 BRA ...' -> 'BRA', 'HMMA.16816.F32 ...' -> 'HMMA')."""
    words = source.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return words[0].split(".")[0] if words else "?"


def summarize(path: Path, top: int = 12) -> str:
    """Three lines of percentages for one kernel's source CSV."""
    rows = list(csv.reader(path.open()))
    header_at = next((i for i, row in enumerate(rows) if SAMPLES in row), None)
    if header_at is None:
        raise SystemExit(f"{path}: no '{SAMPLES}' column; export it with --page source --csv --print-source sass")
    header = rows[header_at]
    col = {name: i for i, name in enumerate(header)}
    reasons = [name for name in header if name.startswith("stall_") and "Not Issued" not in name]
    by_reason, by_opcode, executed = Counter(), Counter(), Counter()
    for row in rows[header_at + 1:]:
        if len(row) < len(header):
            continue
        samples = int(row[col[SAMPLES]] or 0)
        opcode = _opcode(row[col["Source"]])
        by_opcode[opcode] += samples
        executed[opcode] += int(row[col[EXECUTED]] or 0)
        for name in reasons:
            by_reason[name.removeprefix("stall_")] += int(row[col[name]] or 0)

    def shares(counts: Counter) -> str:
        total = sum(counts.values()) or 1
        return ", ".join(f"{key} {value / total:.1%}" for key, value in counts.most_common(top))

    return (f"{path.name}: {sum(by_opcode.values())} samples\n"
            f"  stall samples by reason: {shares(by_reason)}\n"
            f"  stall samples by opcode: {shares(by_opcode)}\n"
            f"  executed instructions by opcode: {shares(executed)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, nargs="+", help="ncu source-page CSV files, one kernel each")
    args = parser.parse_args(argv)
    for path in args.csv:
        print(summarize(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
