#!/usr/bin/env bash
# Session 39 call 2 (call 1's warm machine, the run command as given): the second round of the 224 px step with
# selective_recompute=True, exp-norm-emit first.
mkdir -p $OUT/rc2 && OUT=$OUT/rc2 AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" timeout 150 bash benchmarks/ab_branches.sh run exp-norm-emit main; cd $OUT && tar czf s39_call2.tgz rc2 && rm -rf rc2
