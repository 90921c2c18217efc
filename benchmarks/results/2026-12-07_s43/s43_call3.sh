#!/usr/bin/env bash
# Session 43 call 3: exp-compiled-layer (the fused layer as the custom op hydra_vision::hydra_layer, so that a
# torch.compile graph holds conv + mix + gated norm as one node, as eager autograd does) against main (872bb89),
# packed in .ab (carry .whl and .ab). The branch's fused-layer tests on the GPU; hydra_vit_base's 224 px training step
# under torch.compile's default mode, main then the branch, then with selective recompute on the branch; the eager
# step A/B (the eager path now goes through FusedOp's Function).
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s43_call3
packed_gpu_tests exp-compiled-layer 120 tests/layers/test_fused_layer.py
compiled() {  # BRANCH NAME [bench_models.py options]: the compiled 224 px training step -> $OUT/NAME.jsonl
  local branch=$1 name=$2
  shift 2
  in_packed_tree "$branch" timeout 200 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 12 --out "$OUT/$name.jsonl" "$@" >"$OUT/$name.log" 2>&1
  grep '"case"' "$OUT/$name.jsonl" | cut -c1-330
  archive
}
compiled main compiled_main
compiled exp-compiled-layer compiled_branch
compiled exp-compiled-layer compiled_branch_recompute --model-kwargs selective_recompute=True
AB=models AB_ARGS="--kernel-times 60" ab_run r224 150 main exp-compiled-layer
end_archived_call
