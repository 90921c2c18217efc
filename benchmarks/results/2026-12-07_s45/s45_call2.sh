#!/usr/bin/env bash
# Session 45, call 2 (the same machine as call 1, .ab as there): the compiled 224 px step with selective recompute,
# main then exp-compiled-ln (the partitioner cannot recompute inside the LayerNorm custom op, so its output may now be
# kept: the memory this costs); then the eager 224 px step, main against the branch (its eager path gains one
# argument a call), two interleaved rounds.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s45_call2
compiled() {  # BRANCH NAME [bench_models.py options]: the compiled 224 px training step -> $OUT/NAME.jsonl
  local branch=$1 name=$2
  shift 2
  in_packed_tree "$branch" timeout 200 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 \
    --modes train --compile on --quick --kernel-times 12 --out "$OUT/$name.jsonl" "$@" >"$OUT/$name.log" 2>&1
  grep '"case"' "$OUT/$name.jsonl" | cut -c1-330
  archive
}
compiled main compiled_main_recompute --model-kwargs selective_recompute=True
compiled exp-compiled-ln compiled_branch_recompute --model-kwargs selective_recompute=True
AB=models AB_ARGS="--kernel-times 12" ab_run r224 150 main exp-compiled-ln main exp-compiled-ln
end_archived_call
