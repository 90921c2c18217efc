#!/usr/bin/env bash
# Session 46, call 2 (after call 1, .ab as there): the branch's GPU tests; the compiled 224 px step with selective
# recompute on main and on exp-compiled-ln (the partitioner cannot recompute inside the LayerNorm custom op: what
# that costs); hydra_vit_tiny under CUDA graphs before the fix (s45-base), against call 1's main.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s46_call2
packed_gpu_tests exp-compiled-ln 80 tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/test_backend.py tests/models/test_export.py
for tree in main exp-compiled-ln; do
  bench "$tree" "recompute_$tree" hydra_vit_base 130 --img-sizes 224 --compile on --kernel-times 12 \
    --model-kwargs selective_recompute=True
done
bench s45-base tiny_graphs_base hydra_vit_tiny 80 --img-sizes 128 --batch-sizes 392 --compile reduce-overhead
end_archived_call
