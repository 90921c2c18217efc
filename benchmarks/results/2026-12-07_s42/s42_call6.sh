#!/usr/bin/env bash
# Session 42 call 6: exp-regcap2 (call 5's probe: dx 64/4/1 at 168, forward 32/4/1 at 96, bc 32/4/3 at 80 registers)
# against main (2568a74), packed in .ab. The branch's real-size GPU tests of the mix kernels (every config pinned),
# then hydra_vit_base's training step at 1,024 and 224 px, one round each. Carry .whl and .ab.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s42_call6
(cd .ab/exp-regcap2 && PYTHONPATH=$ROOT/.ab/exp-regcap2:/tmp/site timeout 170 python3 -m pytest \
  tests/kernels/gpu/test_triton_gpu.py -q -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1)
tail -3 $OUT/gpu_tests.log; archive
for size in 1024 224; do
  mkdir -p $OUT/r$size && OUT=$OUT/r$size AB=models AB_ARGS="--img-sizes $size --kernel-times 60" \
    timeout 100 bash benchmarks/ab_branches.sh run main exp-regcap2 2>&1 | tail -6
  archive
done
end_archived_call
