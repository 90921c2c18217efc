#!/usr/bin/env bash
# Prepared in session 47 for the next device session (carry .whl, with py-spy's wheel, and .ab from
# `ab_branches.sh pack main`): why hydra_layer_backward costs ~1 ms more host time a block when Inductor calls it.
# spy_steps.py eager, then compiled, on one machine (compare `spy_summary.py` of the two: _layer_backward's and
# backward_into's samples per step, the custom op's wrappers, mmap/munmap); then the two test files session 46
# fixed, with time to finish (session 47's 90 s run stopped after 13 passes).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call next_a
here=$PWD/benchmarks/results/2026-12-07_s47
for mode in eager compiled; do
  in_packed_tree main timeout 150 python3 "$here/spy_steps.py" "$mode" "$OUT/spy_$mode.txt" >"$OUT/spy_$mode.log" 2>&1
  grep '^{' "$OUT/spy_$mode.log" | cut -c1-300
  gzip -f "$OUT/spy_$mode.txt"
  archive
done
packed_gpu_tests main 200 -rf tests/models/test_fused_residual.py tests/models/test_export.py
end_archived_call
