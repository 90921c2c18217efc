#!/usr/bin/env bash
# Session 42 call 4: exp-regcap (register-capped configs beside chunk_configs: dx 64/4/3 at 168 and 32/4/1 at 64,
# forward 32/4/3 at 128, from call 3's probe) against main (9dfcfa3), packed in .ab. The branch's real-size GPU
# tests of the mix kernels (every autotune config pinned, the capped ones included), then hydra_vit_base's
# training step: 224 px in two interleaved rounds, 1,024 and 2,048 px in one, with the kernel times.
# Carry .whl and .ab.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s42_call4
(cd .ab/exp-regcap && PYTHONPATH=$ROOT/.ab/exp-regcap:/tmp/site timeout 200 python3 -m pytest \
  tests/kernels/gpu/test_triton_gpu.py -q -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1)
tail -3 $OUT/gpu_tests.log; archive
mkdir -p $OUT/r224 && OUT=$OUT/r224 AB=models AB_ARGS="--kernel-times 60" \
  timeout 240 bash benchmarks/ab_branches.sh run main exp-regcap main exp-regcap 2>&1 | tail -12
archive
for size in 1024 2048; do
  mkdir -p $OUT/r$size && OUT=$OUT/r$size AB=models AB_ARGS="--img-sizes $size --kernel-times 60" \
    timeout 150 bash benchmarks/ab_branches.sh run main exp-regcap 2>&1 | tail -6
  archive
done
end_archived_call
