#!/usr/bin/env bash
# Prepared in session 42, not yet run: exp-shell-caps (the conv backward autotuned over register caps of 128 and
# 96 beside its uncapped tiles; the gated norm's backward launched under a cap of 168, which ptxas meets with no
# spills where it took 217 registers) against main. Here first: bash benchmarks/ab_branches.sh pack main
# exp-shell-caps. On the device (carry .whl and .ab): the branch's shell-kernel GPU tests, the shell kernels alone,
# then hydra_vit_base's 224 px training step in two interleaved rounds with the kernel times.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call shell_caps
(cd .ab/exp-shell-caps && PYTHONPATH=$ROOT/.ab/exp-shell-caps:/tmp/site timeout 150 python3 -m pytest \
  tests/kernels/gpu/test_shell_kernels_gpu.py -q -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1)
tail -3 $OUT/gpu_tests.log; archive
mkdir -p $OUT/shell && OUT=$OUT/shell AB=shell AB_ARGS="--ops conv gated_norm" \
  timeout 150 bash benchmarks/ab_branches.sh run main exp-shell-caps 2>&1 | tail -12
archive
mkdir -p $OUT/r224 && OUT=$OUT/r224 AB=models AB_ARGS="--kernel-times 60" \
  timeout 240 bash benchmarks/ab_branches.sh run main exp-shell-caps main exp-shell-caps 2>&1 | tail -12
end_archived_call
