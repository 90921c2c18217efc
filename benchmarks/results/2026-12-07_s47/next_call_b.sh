#!/usr/bin/env bash
# Prepared in session 47 for the next device session (.whl and .ab as for next_call_a.sh): ViT-B and
# hydra_vit_base under CUDA graphs at 224 px (the fair baseline for Hydra's 71.2 ms CUDA-graph step, and its
# memory: reserved_gib includes the graphs' pool).
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call next_b
bench main graphs_vitb vit_base_patch16_224 100 --img-sizes 224 --compile reduce-overhead
bench main graphs_base hydra_vit_base 110 --img-sizes 224 --compile reduce-overhead
end_archived_call
