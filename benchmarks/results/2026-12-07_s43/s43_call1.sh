#!/usr/bin/env bash
# Session 43 call 1: exp-shell-caps (session 42's prepared branch, rebased onto 872bb89: the conv backward
# autotuned over register caps of 128 and 96 beside its uncapped tiles; the gated norm's backward launched under a
# cap of 168) against main (872bb89), packed in .ab. The branch's shell-kernel GPU tests, the conv and gated norm
# alone, then hydra_vit_base's training step: 224 px in two interleaved rounds and 1,024 px in one, with the kernel
# times. Carry .whl and .ab.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s43_call1
packed_gpu_tests exp-shell-caps 150 tests/kernels/gpu/test_shell_kernels_gpu.py
AB=shell AB_ARGS="--ops conv gated_norm" ab_run shell 120 main exp-shell-caps
AB=models AB_ARGS="--kernel-times 60" ab_run r224 220 main exp-shell-caps main exp-shell-caps
AB=models AB_ARGS="--img-sizes 1024 --kernel-times 60" ab_run r1024 120 main exp-shell-caps
end_archived_call
