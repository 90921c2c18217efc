#!/usr/bin/env bash
# Session 46, call 4 (.ab and .whl as in call 1): host_probe.py in main's tree (why the compiled step is host-bound).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s46_call4
in_packed_tree main timeout 170 python3 "$PWD/benchmarks/results/2026-12-07_s46/host_probe.py" >"$OUT/host_probe.log" 2>&1
grep -E '^\{|THREAD' "$OUT/host_probe.log"
end_archived_call
