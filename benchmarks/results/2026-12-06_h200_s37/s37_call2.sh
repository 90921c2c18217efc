#!/usr/bin/env bash
# Session 37 call 2: hydra_vit_base's eager 224 px training step (GPU ms from 60 profiled steps) for main,
# exp-diag-fold and cand-s37, interleaved, main first and last.
set -uo pipefail
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
AB=models AB_ARGS="--kernel-times 60" timeout 520 bash benchmarks/ab_branches.sh run main exp-diag-fold cand-s37 main exp-diag-fold cand-s37
cd $FINAL && tar czf s37_call2.tgz w && rm -rf w
