#!/usr/bin/env bash
# Session 46, call 4, not run (the session's device time was spent; .ab and .whl as in call 1): host_probe.py in
# main's tree (why the compiled step is host-bound), then again with Inductor compiling in the main process
# (TORCHINDUCTOR_COMPILE_THREADS=1: no worker pool and none of its threads).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s46_call4
probe=$PWD/benchmarks/results/2026-12-07_s46/host_probe.py
for setting in "" TORCHINDUCTOR_COMPILE_THREADS=1; do
  log=$OUT/host_probe${setting:+_one_thread}.log
  in_packed_tree main env $setting timeout 200 python3 "$probe" >"$log" 2>&1  # $setting unquoted: none or one
  grep -E '^\{|THREAD' "$log"
  archive
done
end_archived_call
