#!/usr/bin/env bash
# Session 35 call 2: main's GPU tests (gpu_check.sh tests), exp-tailtiles' mix GPU tests, and main's 224 px
# training-step profile with input shapes.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
TEST_LIMIT=270 bash benchmarks/gpu_check.sh tests 2>&1 | tail -15
(cd $ROOT/.ab/exp-residual && PYTHONPATH=$ROOT/.ab/exp-residual:/tmp/site timeout 60 python3 -m pytest -q -n 4 \
   -p no:cacheprovider tests/kernels/test_layernorm_triton.py tests/kernels/gpu/test_shell_kernels_gpu.py \
   > $OUT/gpu_tests_residual.txt 2>&1; tail -3 $OUT/gpu_tests_residual.txt)
PYTHONPATH=$ROOT:/tmp/site timeout 90 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 \
   --modes train --compile off --quick --profile > $OUT/profile_224.txt 2>&1; tail -2 $OUT/profile_224.txt
cd $FINAL && tar czf s35_call2.tgz w && rm -rf w
