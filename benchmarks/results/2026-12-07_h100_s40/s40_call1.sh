#!/usr/bin/env bash
# Session 40 call 1 (prepared, not run): main's GPU tests (gpu_check.sh tests in main's packed tree, 2008903);
# hydra_vit_base's 224 px step with selective_recompute=True, main against f75723a (main before 53bc2cf's shortcut
# change), two interleaved rounds. The archive is rewritten after each step (start_archived_call), so a cut-off
# call keeps what ran.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s40_call1
(cd .ab/main && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/main:/tmp/site TEST_LIMIT=220 \
   bash benchmarks/gpu_check.sh tests 2>&1 | tail -8); archive
mkdir -p $OUT/rc && OUT=$OUT/rc AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" \
  timeout 230 bash benchmarks/ab_branches.sh run main f75723a main f75723a
end_archived_call
