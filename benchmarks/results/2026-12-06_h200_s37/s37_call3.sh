#!/usr/bin/env bash
# Session 37 call 3: main's GPU tests (with the conv backward two tokens a step); hydra_vit_base's 224 px step for
# session 36's main and this main, one round each.
set -uo pipefail
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
TEST_LIMIT=210 bash benchmarks/gpu_check.sh tests 2>&1 | tail -4
AB=models AB_ARGS="--kernel-times 60" timeout 150 bash benchmarks/ab_branches.sh run s36-main main
cd $FINAL && tar czf s37_call3.tgz w && rm -rf w
