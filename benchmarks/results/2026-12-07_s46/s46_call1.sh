#!/usr/bin/env bash
# Session 46, call 1: session 45's call 2 in the order of what decides (carry .whl and .ab, packed by
# `ab_branches.sh pack s45-base main exp-compiled-ln`), within the 600 s limit. 1: the compiled 224 px training step
# of hydra_vit_base on main (the graph-break fix) with ViT-B from the same process, then on exp-compiled-ln (the
# LayerNorm ops under compile). 2: the graph count of the forward under autocast before the fix and with it.
# 3: hydra_vit_tiny and deit_tiny under CUDA graphs (128 px, batch 392, reduce-overhead) on main.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s46_call1
compiled=(--img-sizes 224 --compile on --kernel-times 40)
bench main compiled_main "hydra_vit_base vit_base_patch16_224" 140 "${compiled[@]}"
bench exp-compiled-ln compiled_branch hydra_vit_base 100 "${compiled[@]}"
graph_counts 50 s45-base main
bench main tiny_graphs_main "hydra_vit_tiny deit_tiny_patch16_224" 100 --img-sizes 128 --batch-sizes 392 \
  --compile reduce-overhead
end_archived_call
