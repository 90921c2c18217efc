#!/usr/bin/env bash
# Session 45, call 2b: s45_call2.sh cut to what the session's remaining device time holds (repeated failed starts):
# graph count and break reasons of the forward under autocast, s45-base and main; the compiled 224 px training step
# of hydra_vit_base on main and exp-compiled-ln; the branch's GPU tests. .ab and .whl carried as for call 2.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call2b
for tree in s45-base main; do
  in_packed_tree "$tree" timeout 60 python3 "$PWD/benchmarks/results/2026-12-07_s45/graph_breaks.py" "$tree" \
    >"$OUT/graph_breaks_$tree.log" 2>&1
  grep -v Warning "$OUT/graph_breaks_$tree.log" | grep -E '^\{|is_autocast' | cut -c1-600
done
archive
for tree in main exp-compiled-ln; do
  in_packed_tree "$tree" timeout 100 python3 benchmarks/bench_models.py --models hydra_vit_base --modes train --quick \
    --img-sizes 224 --compile on --kernel-times 40 --out "$OUT/compiled_$tree.jsonl" >"$OUT/compiled_$tree.log" 2>&1
  grep '"case"' "$OUT/compiled_$tree.jsonl" | cut -c1-300
  archive
done
packed_gpu_tests exp-compiled-ln 80 tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/test_backend.py tests/models/test_export.py
end_archived_call
