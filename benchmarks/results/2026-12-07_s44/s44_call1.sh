#!/usr/bin/env bash
# Session 44, call 1 (session 43's s43_call5.sh with main at 0cb3632, plus GPU tests). 1: the compiled 224 px training
# step of hydra_vit_base before the fused layer became a custom op (s43-base = 872bb89) and now (main: the op tagged
# flexible_layout, as every fused op since 419b245), each with its 60 kernels of most GPU time. 2: the eager 224 px
# step with selective recompute, main against exp-norm-cap-recompute (the gated norm's backward capped at 168
# registers where it writes y again), two interleaved rounds. 3: tests/kernels/test_layouts.py and the fused layer's
# tests on the GPU. Here first: bash benchmarks/ab_branches.sh pack s43-base main exp-norm-cap-recompute; then on the
# device (carry .whl and .ab).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s44_call1
for branch in main s43-base; do
  in_packed_tree "$branch" timeout 150 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 60 --out "$OUT/compiled_224_$branch.jsonl" \
    >"$OUT/compiled_224_$branch.log" 2>&1
  grep '"case"' "$OUT/compiled_224_$branch.jsonl" | cut -c1-300
  archive
done
AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" ab_run recompute 200 main \
  exp-norm-cap-recompute main exp-norm-cap-recompute
packed_gpu_tests main 90 tests/kernels/test_layouts.py tests/layers/test_fused_layer.py
end_archived_call
