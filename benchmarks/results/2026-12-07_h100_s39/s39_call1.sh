#!/usr/bin/env bash
# Session 39 call 1: the GPU tests of exp-norm-emit's tree (= main + the norm's backward rewriting out_proj's input;
# gpu_check.sh tests); hydra_vit_base's 224 px step: main and exp-norm-emit with selective_recompute=True, then
# main and exp-diag-prefetch; the gated norm alone on exp-norm-emit and the diagonal's backward alone for main and
# exp-diag-prefetch (bench_shell.py). The archive is rewritten after each step, so a cut-off call keeps what ran.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
archive() { (cd $FINAL && tar czf s39_call1.tgz w); }
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
(cd .ab/exp-norm-emit && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/exp-norm-emit:/tmp/site TEST_LIMIT=200 \
   bash benchmarks/gpu_check.sh tests 2>&1 | tail -6); archive
mkdir -p $OUT/rc && OUT=$OUT/rc AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" \
  timeout 130 bash benchmarks/ab_branches.sh run main exp-norm-emit; archive
AB=models AB_ARGS="--kernel-times 60" timeout 130 bash benchmarks/ab_branches.sh run main exp-diag-prefetch; archive
AB=shell AB_ARGS="--ops gated_norm" timeout 40 bash benchmarks/ab_branches.sh run exp-norm-emit; archive
AB=shell AB_ARGS="--ops diagonal" timeout 70 bash benchmarks/ab_branches.sh run main exp-diag-prefetch; archive
rm -rf $FINAL/w
