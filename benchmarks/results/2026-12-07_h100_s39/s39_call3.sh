#!/usr/bin/env bash
# Session 39 call 3 (same machine, the run command as given): the second round of the default 224 px step,
# exp-diag-prefetch first.
mkdir -p $OUT/d2 && OUT=$OUT/d2 AB=models AB_ARGS="--kernel-times 60" timeout 100 bash benchmarks/ab_branches.sh run exp-diag-prefetch main; cd $OUT && tar czf s39_call3.tgz d2 && rm -rf d2
