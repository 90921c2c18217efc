#!/usr/bin/env bash
# Session 45, call 1: exp-compiled-ln (under torch.compile the blocks' norm1 runs the fused LayerNorm custom ops, the
# shortcut's gradient added in the backward kernel, instead of Inductor's LayerNorm and casts) against main (6607d4e),
# packed in .ab (carry .whl and .ab). 1: the branch's LayerNorm and fused-residual tests on the GPU. 2: hydra_vit_base's
# compiled 224 px training step (torch.compile's default mode, bf16 autocast, batch 128, 60 top kernels), main, then
# the branch with ViT-B in the same process (session 44: 74.80 ms against ViT-B's 42.0). Here first:
# bash benchmarks/ab_branches.sh pack main exp-compiled-ln
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call1
packed_gpu_tests exp-compiled-ln 120 tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/gpu/test_shell_kernels_gpu.py
compiled() {  # BRANCH NAME MODELS [bench_models.py options]: the compiled 224 px training step -> $OUT/NAME.jsonl
  local branch=$1 name=$2 models=$3
  shift 3
  in_packed_tree "$branch" timeout 220 python3 benchmarks/bench_models.py --models $models --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 60 --out "$OUT/$name.jsonl" "$@" >"$OUT/$name.log" 2>&1
  grep '"case"' "$OUT/$name.jsonl" | cut -c1-330
  archive
}
compiled main compiled_main hydra_vit_base
compiled exp-compiled-ln compiled_branch "hydra_vit_base vit_base_patch16_224"
end_archived_call
