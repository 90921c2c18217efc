#!/usr/bin/env bash
# Session 49, call B (.whl and .ab carried; run right after call A on the warm machine): the compiled training step
# (default mode, the compile-worker pool released after the warm-up) of hydra_vit_base and ViT-B at 512, 1,024 and
# 2,048 px, one process.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s49_b
bench main compiled_sizes "hydra_vit_base vit_base_patch16_224" 480 --img-sizes 512 1024 2048 --compile on
end_archived_call
