#!/usr/bin/env bash
# Session 43 call 2, main (872bb89) packed in .ab (carry .whl and .ab): what session 42 left unmeasured with all six
# register-capped configs, and the compiled step, last measured in session 14.
#   1. the cold start: hydra_vit_base's first 1,024 px training step on an empty Triton cache, then a second
#      process on the filled cache (as session 41's calls 4-5);
#   2. the 512 px step of both models, eager (bench_models.py --quick, training and inference);
#   3. the 224 px training step of both models under torch.compile's default mode.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s43_call2
cold() {  # bench_models.py --cold-start at 1,024 px on the Triton cache /tmp/triton_cold_s43 -> $OUT/$1.jsonl
  in_packed_tree main env TRITON_CACHE_DIR=/tmp/triton_cold_s43 timeout 130 python3 benchmarks/bench_models.py \
    --cold-start --models hydra_vit_base --img-sizes 1024 --modes train --compile off --out "$OUT/$1.jsonl" \
    >"$OUT/$1.log" 2>&1
  grep cold_start "$OUT/$1.jsonl" | cut -c1-400
}
rm -rf /tmp/triton_cold_s43; cold cold_start; cold warm_start; archive
in_packed_tree main timeout 120 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --img-sizes 512 --compile off --quick --kernel-times 8 --out "$OUT/models_512.jsonl" >"$OUT/models_512.log" 2>&1
in_packed_tree main python3 benchmarks/bench_models.py --table "$OUT/models_512.jsonl"; archive
in_packed_tree main timeout 300 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --img-sizes 224 --modes train --compile on --quick --kernel-times 8 --out "$OUT/compiled_224.jsonl" \
  >"$OUT/compiled_224.log" 2>&1
in_packed_tree main python3 benchmarks/bench_models.py --table "$OUT/compiled_224.jsonl"; tail -3 "$OUT/compiled_224.log"
end_archived_call
