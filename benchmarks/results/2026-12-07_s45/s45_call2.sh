#!/usr/bin/env bash
# Session 45, call 2. Call 1 showed the compiled step host-bound (96.5 ms a step for 74.5 ms of GPU work), and its log
# Dynamo's warning that it cannot trace torch.amp.is_autocast_available (matmul_dtype, asked by every block). Packed
# in .ab (carry .whl and .ab): s45-base (6607d4e, before the fix), main (28c1700: the fix, autocast_available) and
# exp-compiled-ln (main + the LayerNorm ops under compile). 1: graph count and break reasons of the forward under
# autocast, s45-base and main (graph_breaks.py). 2: the branch's GPU tests. 3: the compiled 224 px training step of
# hydra_vit_base in each tree, ViT-B with the branch.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call2
for tree in s45-base main; do
  in_packed_tree "$tree" timeout 120 python3 "$PWD/benchmarks/results/2026-12-07_s45/graph_breaks.py" "$tree" \
    >"$OUT/graph_breaks_$tree.log" 2>&1
  grep -v Warning "$OUT/graph_breaks_$tree.log" | grep -E '^\{|is_autocast' | cut -c1-600
done
archive
packed_gpu_tests exp-compiled-ln 150 tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/test_backend.py tests/models/test_export.py
compiled() {  # BRANCH NAME MODELS: the compiled 224 px training step -> $OUT/NAME.jsonl
  in_packed_tree "$1" timeout 200 python3 benchmarks/bench_models.py --models $3 --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 60 --out "$OUT/$2.jsonl" >"$OUT/$2.log" 2>&1
  grep '"case"' "$OUT/$2.jsonl" | cut -c1-300
  archive
}
compiled s45-base compiled_base hydra_vit_base
compiled main compiled_main hydra_vit_base
compiled exp-compiled-ln compiled_branch "hydra_vit_base vit_base_patch16_224"
end_archived_call
