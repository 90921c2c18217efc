#!/usr/bin/env bash
# Session 37 call 4: exp-colsum's GPU tests (main + column_sums: gpu_check.sh tests in its packed tree); the conv,
# gated norm and LayerNorm alone (bench_shell.py) for main and exp-colsum; hydra_vit_base's 224 px step for both.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
(cd .ab/exp-colsum && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/exp-colsum:/tmp/site TEST_LIMIT=190 \
   bash benchmarks/gpu_check.sh tests 2>&1 | tail -5)
AB=shell timeout 80 bash benchmarks/ab_branches.sh run main exp-colsum
AB=models AB_ARGS="--kernel-times 60" timeout 110 bash benchmarks/ab_branches.sh run main exp-colsum
cd $FINAL && tar czf s37_call4.tgz w && rm -rf w
