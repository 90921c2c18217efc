#!/usr/bin/env bash
# Session 38 call 2 (the run command as given, on call 1's warm machine): hydra_vit_base's 224 px step for
# exp-colsum, main, exp-diag-grad and exp-colsum again (ab_models_exp-colsum.jsonl holds both of its runs).
mkdir -p $OUT/w && OUT=$OUT/w AB=models AB_ARGS="--kernel-times 60" timeout 230 bash benchmarks/ab_branches.sh run exp-colsum main exp-diag-grad exp-colsum; cd $OUT && tar czf s38_call2.tgz w && rm -rf w
