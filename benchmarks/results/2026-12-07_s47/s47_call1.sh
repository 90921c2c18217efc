#!/usr/bin/env bash
# Session 47, call 1 (carry .whl, with py-spy's wheel, and .ab from `ab_branches.sh pack main` at a050414): why the
# default-mode compiled step is host-bound. host_probe.py (session 46: host time per phase, compiled and eager in
# one process, GIL switch interval, GC, threads); spy_steps.py (py-spy with native frames, every thread, compiled
# only: eager is GPU-bound); then session 46's two test fixes on the GPU.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s47_call1
here=$PWD/benchmarks/results/2026-12-07_s47
in_packed_tree main timeout 190 python3 "$PWD/benchmarks/results/2026-12-07_s46/host_probe.py" >"$OUT/host_probe.log" 2>&1
grep -E '^\{|THREAD' "$OUT/host_probe.log" | cut -c1-300
archive
in_packed_tree main timeout 150 python3 "$here/spy_steps.py" compiled "$OUT/spy_compiled.txt" >"$OUT/spy_compiled.log" 2>&1
grep '^{' "$OUT/spy_compiled.log"
archive
packed_gpu_tests main 90 -rf tests/models/test_fused_residual.py tests/models/test_export.py
end_archived_call
