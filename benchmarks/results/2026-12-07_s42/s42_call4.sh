#!/usr/bin/env bash
# Session 42 call 4: exp-regcap (register-capped configs beside chunk_configs: dx 64/4/3 at 168 and 32/4/1 at 64,
# forward 32/4/3 at 128, from call 3's probe) against main (9dfcfa3), packed in .ab. The branch's real-size GPU
# tests of the mix kernels (every autotune config pinned, the capped ones included), then hydra_vit_base's
# training step: 224 px in two interleaved rounds, 1,024 and 2,048 px in one, with the kernel times.
# Carry .whl and .ab.
# (Written after the call with run_concurrent.sh's packed_gpu_tests and ab_run, which run the same commands.)
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s42_call4
packed_gpu_tests exp-regcap 200 tests/kernels/gpu/test_triton_gpu.py
AB=models AB_ARGS="--kernel-times 60" ab_run r224 240 main exp-regcap main exp-regcap
for size in 1024 2048; do
  AB=models AB_ARGS="--img-sizes $size --kernel-times 60" ab_run r$size 150 main exp-regcap
done
end_archived_call
