#!/usr/bin/env bash
# Session 40 call 2 (prepared, not run; same machine as call 1 when warm): the models table on main's packed
# tree (hydra_vit_base vs vit_base_patch16_224 at 224-2,048 px, training and inference, eager, --quick);
# hydra_vit_base's training step with selective_recompute=True at every size (speed, peak memory); the cold start
# of its 1,024 px training step (empty Triton cache, then warm); the default 224 px step, main against f75723a.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s40_call2
cd .ab/main
PYTHONPATH=$ROOT/.ab/main:/tmp/site timeout 300 python3 benchmarks/bench_models.py \
  --models hydra_vit_base vit_base_patch16_224 --compile off --quick --kernel-times 8 \
  --out $OUT/models.jsonl > $OUT/models.log 2>&1
python3 benchmarks/bench_models.py --table $OUT/models.jsonl; archive
PYTHONPATH=$ROOT/.ab/main:/tmp/site timeout 130 python3 benchmarks/bench_models.py \
  --models hydra_vit_base --modes train --compile off --quick --model-kwargs selective_recompute=True \
  --out $OUT/models_recompute.jsonl > $OUT/models_recompute.log 2>&1
python3 benchmarks/bench_models.py --table $OUT/models_recompute.jsonl; archive
for run in first second; do  # cold start: one empty Triton cache, two processes
  TRITON_CACHE_DIR=/tmp/triton_cold_s40 PYTHONPATH=$ROOT/.ab/main:/tmp/site timeout 100 python3 \
    benchmarks/bench_models.py --cold-start --models hydra_vit_base --img-sizes 1024 --modes train --compile off \
    --out $OUT/cold_start.jsonl > $OUT/cold_start_$run.log 2>&1
done; tail -2 $OUT/cold_start.jsonl; archive
cd $ROOT
mkdir -p $OUT/d && OUT=$OUT/d AB=models AB_ARGS="--kernel-times 60" timeout 100 \
  bash benchmarks/ab_branches.sh run f75723a main
end_archived_call
