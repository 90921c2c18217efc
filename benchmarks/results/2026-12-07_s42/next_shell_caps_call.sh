#!/usr/bin/env bash
# Prepared in session 42, not yet run: exp-shell-caps (the conv backward autotuned over register caps of 128 and
# 96 beside its uncapped tiles; the gated norm's backward launched under a cap of 168, which ptxas meets with no
# spills where it took 217 registers) against main. Here first: bash benchmarks/ab_branches.sh pack main
# exp-shell-caps. On the device (carry .whl and .ab): the branch's shell-kernel GPU tests, the shell kernels alone,
# then hydra_vit_base's 224 px training step in two interleaved rounds with the kernel times.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call shell_caps
packed_gpu_tests exp-shell-caps 150 tests/kernels/gpu/test_shell_kernels_gpu.py
AB=shell AB_ARGS="--ops conv gated_norm" ab_run shell 150 main exp-shell-caps
AB=models AB_ARGS="--kernel-times 60" ab_run r224 240 main exp-shell-caps main exp-shell-caps
end_archived_call
