#!/usr/bin/env bash
# Session 42 call 6: exp-regcap2 (call 5's probe: dx 64/4/1 at 168, forward 32/4/1 at 96, bc 32/4/3 at 80 registers)
# against main (2568a74), packed in .ab. The branch's real-size GPU tests of the mix kernels (every config pinned),
# then hydra_vit_base's training step at 1,024 and 224 px, one round each. Carry .whl and .ab.
# (Written after the call with run_concurrent.sh's packed_gpu_tests and ab_run, which run the same commands.)
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s42_call6
packed_gpu_tests exp-regcap2 170 tests/kernels/gpu/test_triton_gpu.py
for size in 1024 224; do
  AB=models AB_ARGS="--img-sizes $size --kernel-times 60" ab_run r$size 100 main exp-regcap2
done
end_archived_call
