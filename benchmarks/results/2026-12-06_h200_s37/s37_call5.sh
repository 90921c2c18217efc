#!/usr/bin/env bash
# Session 37 call 5 (the budget left for one short call): exp-colsum's GPU tests of the kernels it touches
# (shell kernels at real sizes, column_sums); the 224 px step (kernel times),
# main against exp-colsum.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
(cd .ab/exp-colsum && PYTHONPATH=$ROOT/.ab/exp-colsum:/tmp/site timeout 60 python3 -m pytest -q -p no:cacheprovider -n 4 \
   tests/kernels/gpu/test_shell_kernels_gpu.py tests/kernels/test_partial_sums.py \
   2>&1 | tee $OUT/gpu_tests.log | tail -4)
AB=models AB_ARGS="--kernel-times 60" timeout 130 bash benchmarks/ab_branches.sh run main exp-colsum
cd $FINAL && tar czf s37_call5.tgz w && rm -rf w
