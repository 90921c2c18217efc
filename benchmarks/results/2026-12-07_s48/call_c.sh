#!/usr/bin/env bash
# Session 48, call C: the fix for call B's finding: Inductor's compile-worker pool (parallel compile) shut down
# after the warm-up (`release_compile_workers`, RELEASE=1), eager / compiled / eager again in one process.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s48_c
here=$PWD/benchmarks/results/2026-12-07_s48
RELEASE=1 in_packed_tree main timeout 200 python3 "$here/layer_timer.py" >"$OUT/layer_timer_release.log" 2>&1
grep '^{' "$OUT/layer_timer_release.log" | cut -c1-160
end_archived_call
