#!/usr/bin/env bash
# Session 48, call A (carry .whl and .ab from `ab_branches.sh pack main`): the fused layer's host time by component,
# eager, compiled and eager again in one process (layer_timer.py); then the two test files session 46 fixed, with
# time to finish (session 47's 90 s run stopped after 13 passes).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s48_a
here=$PWD/benchmarks/results/2026-12-07_s48
in_packed_tree main timeout 220 python3 "$here/layer_timer.py" >"$OUT/layer_timer.log" 2>&1
grep '^{' "$OUT/layer_timer.log" | cut -c1-2500
tail -3 "$OUT/layer_timer.log" | cut -c1-300
archive
packed_gpu_tests main 160 -rf tests/models/test_fused_residual.py tests/models/test_export.py
end_archived_call
