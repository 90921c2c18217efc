#!/usr/bin/env bash
# Session 47, call 3 (carry .whl and .ab from `ab_branches.sh pack main`; the budget left held one probe): gc_probe.py
# alone, its lines printed as they come.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s47_call3
in_packed_tree main timeout 150 python3 "$PWD/benchmarks/results/2026-12-07_s47/gc_probe.py" 2>&1 \
  | tee "$OUT/gc_probe.log" | grep --line-buffered '^{'
end_archived_call
