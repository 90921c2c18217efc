#!/usr/bin/env bash
# Session 38 call 1: exp-diag-grad's GPU tests (main + column_sums + token_diagonal: gpu_check.sh tests in its
# packed tree); the diagonal's backward alone (bench_shell.py --ops diagonal: the Triton pass and torch's);
# hydra_vit_base's 224 px step for main and exp-diag-grad.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
(cd .ab/exp-diag-grad && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/exp-diag-grad:/tmp/site TEST_LIMIT=210 \
   bash benchmarks/gpu_check.sh tests 2>&1 | tail -6)
AB=models AB_ARGS="--kernel-times 60" timeout 170 bash benchmarks/ab_branches.sh run main exp-diag-grad
AB=shell AB_ARGS="--ops diagonal" timeout 60 bash benchmarks/ab_branches.sh run exp-diag-grad
cd $FINAL && tar czf s38_call1.tgz w && rm -rf w
