#!/usr/bin/env bash
# Session 42 call 1: exp-kdx-consistent (K' from dx as x_j . u_j, R from the pair kernel's rounded tile, both sums of
# the same rounded terms) against main (9dfcfa3), packed in .ab. The branch's real-size GPU tests of the mix
# kernels (every autotune config pinned), then hydra_vit_base's 224 px training step, rounds interleaved, and one
# round at 1,024 px, each with the kernel times. Carry .whl and .ab.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s42_call1
(cd .ab/exp-kdx-consistent && PYTHONPATH=$ROOT/.ab/exp-kdx-consistent:/tmp/site timeout 200 python3 -m pytest \
  tests/kernels/gpu/test_triton_gpu.py -q -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1)
tail -3 $OUT/gpu_tests.log; archive
mkdir -p $OUT/r224 && OUT=$OUT/r224 AB=models AB_ARGS="--kernel-times 60" \
  timeout 260 bash benchmarks/ab_branches.sh run main exp-kdx-consistent main exp-kdx-consistent 2>&1 | tail -12
archive
mkdir -p $OUT/r1024 && OUT=$OUT/r1024 AB=models AB_ARGS="--img-sizes 1024 --kernel-times 60" \
  timeout 150 bash benchmarks/ab_branches.sh run main exp-kdx-consistent 2>&1 | tail -6
end_archived_call
