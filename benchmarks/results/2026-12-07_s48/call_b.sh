#!/usr/bin/env bash
# Session 48, call B: call A found the eager step as slow after compiling as the compiled step (91.6 vs 84.2 ms), with
# every host component ~30% slower. Is it Inductor's compile-worker subprocesses? layer_timer.py again with
# TORCHINDUCTOR_COMPILE_THREADS=1 (compiles in process, no worker pool), and the busiest processes sampled by ps while
# the compiled case runs.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s48_b
here=$PWD/benchmarks/results/2026-12-07_s48
(TORCHINDUCTOR_COMPILE_THREADS=1 in_packed_tree main timeout 230 python3 "$here/layer_timer.py" >"$OUT/layer_timer_1thread.log" 2>&1) &
for t in 40 80 120; do
  sleep 40
  echo "== ${t}s" >>"$OUT/ps.txt"
  ps -eo pid,ppid,pcpu,nlwp,comm,args --sort=-pcpu | head -8 | cut -c1-200 >>"$OUT/ps.txt"
done
wait
grep '^{' "$OUT/layer_timer_1thread.log" | cut -c1-160
cat "$OUT/ps.txt"
end_archived_call
