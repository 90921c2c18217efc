#!/usr/bin/env bash
# Session 45, call 2. Call 1 showed the compiled step host-bound (96.5 ms a step for 74.5 ms of GPU work), and its log
# Dynamo's warning that it cannot trace torch.amp.is_autocast_available (matmul_dtype, asked by every block). Packed
# in .ab (carry .whl and .ab): s45-base (6607d4e, before the fix), main (28c1700: the fix, autocast_available) and
# exp-compiled-ln (main + the LayerNorm ops under compile). 1: graph count and break reasons of the forward under
# autocast, s45-base and main (graph_breaks.py). 2: the compiled 224 px training step of hydra_vit_base in each tree,
# ViT-B with the branch. 3: the branch's GPU tests. 4: the small model under CUDA graphs, where host time decides
# (session 5: hydra_vit_tiny 12,623 img/s, 0.29x deit_tiny; 128 px, batch 392, reduce-overhead), main and s45-base.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s45_call2
graph_counts 60 s45-base main
compiled=(--img-sizes 224 --compile on --kernel-times 40)
bench s45-base compiled_base hydra_vit_base 100 "${compiled[@]}"
bench main compiled_main hydra_vit_base 100 "${compiled[@]}"
bench exp-compiled-ln compiled_branch "hydra_vit_base vit_base_patch16_224" 140 "${compiled[@]}"
packed_gpu_tests exp-compiled-ln 80 tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/test_backend.py tests/models/test_export.py
tiny=(--img-sizes 128 --batch-sizes 392 --compile reduce-overhead)
bench main tiny_graphs_main "hydra_vit_tiny deit_tiny_patch16_224" 100 "${tiny[@]}"
bench s45-base tiny_graphs_base hydra_vit_tiny 70 "${tiny[@]}"
end_archived_call
