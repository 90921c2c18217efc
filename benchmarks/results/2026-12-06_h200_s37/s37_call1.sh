#!/usr/bin/env bash
# Session 37 call 1: cand-s37's GPU tests (gpu_check.sh tests in its packed tree); the conv kernels alone
# (bench_shell.py --ops conv) for main and the two conv-backward unroll branches, main again at the end.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
(cd .ab/cand-s37 && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/cand-s37:/tmp/site TEST_LIMIT=210 \
   bash benchmarks/gpu_check.sh tests 2>&1 | tail -8)
AB=shell AB_ARGS="--ops conv" timeout 200 bash benchmarks/ab_branches.sh run main exp-conv-bwd-unroll2 exp-conv-bwd-unroll3 main
cd $FINAL && tar czf s37_call1.tgz w && rm -rf w
