#!/usr/bin/env bash
# Session 42 call 1: exp-kdx-consistent (K' from dx as x_j . u_j, R from the pair kernel's rounded tile, both sums of
# the same rounded terms) against main (9dfcfa3), packed in .ab. The branch's real-size GPU tests of the mix
# kernels (every autotune config pinned), then hydra_vit_base's 224 px training step, rounds interleaved, and one
# round at 1,024 px, each with the kernel times. Carry .whl and .ab.
# (Written after the call with run_concurrent.sh's packed_gpu_tests and ab_run, which run the same commands.)
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s42_call1
packed_gpu_tests exp-kdx-consistent 200 tests/kernels/gpu/test_triton_gpu.py
AB=models AB_ARGS="--kernel-times 60" ab_run r224 260 main exp-kdx-consistent main exp-kdx-consistent
AB=models AB_ARGS="--img-sizes 1024 --kernel-times 60" ab_run r1024 150 main exp-kdx-consistent
end_archived_call
