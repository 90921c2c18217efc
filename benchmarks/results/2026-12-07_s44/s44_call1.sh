#!/usr/bin/env bash
# Session 44, call 1 (session 43's s43_call5.sh, revised: main at b5e5e55, plus GPU tests). 1: the compiled 224 px
# training step of hydra_vit_base, its fused layer a custom op tagged flexible_layout (every fused op since 419b245),
# and of ViT-B, each with its 60 kernels of most GPU time (before the tag: session 43's call 3, 79.84 ms). 2: the
# eager 224 px step with selective recompute, main against exp-norm-cap-recompute (the gated norm's backward capped
# at 168 registers where it writes y again), two interleaved rounds. 3: tests/kernels/test_layouts.py and the fused
# layer's tests on the GPU. Here first: bash benchmarks/ab_branches.sh pack main exp-norm-cap-recompute; then on the
# device (carry .whl and .ab).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s44_call1
in_packed_tree main timeout 240 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --img-sizes 224 --modes train --compile on --quick --kernel-times 60 --out "$OUT/compiled_224.jsonl" \
  >"$OUT/compiled_224.log" 2>&1
in_packed_tree main python3 benchmarks/bench_models.py --table "$OUT/compiled_224.jsonl"; tail -3 "$OUT/compiled_224.log"
archive
AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" ab_run recompute 200 main \
  exp-norm-cap-recompute main exp-norm-cap-recompute
packed_gpu_tests main 90 tests/kernels/test_layouts.py tests/layers/test_fused_layer.py
end_archived_call
