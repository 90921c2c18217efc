#!/usr/bin/env bash
# The mixer comparison on Imagewoof (docs/mixers.md) in one device call: every configs/mixers/*.yaml
# (one recipe, only `mixer` differs) on one GPU, then the table, through benchmarks/run_concurrent.sh:
#   1. one train_imagenet.py run per mixer, JOBS at a time on the same GPU; runs still going at
#      DEADLINE seconds after the start get SIGTERM (the trainer saves and exits; the table says so),
#      runs that would start with less than 60 s left do not start
#   2. each mixer's training step with the GPU to itself (benchmarks/train_throughput.py, 128 px,
#      batch 128) until STOP seconds after the start
#   3. benchmarks/mixer_table.py: params, epochs, top-1 (last, best), top-5, img/s -> $OUT/mixer_table.md
#      and mixer_table.csv; the runs' logs and CSVs (with jobs.tsv, gpu.txt, throughput.jsonl) in
#      $OUT/mixer_runs.tgz
# Carry .data (imagewoof2-128.tar.gz from ../shared/datasets) and, where the device's timm is older
# than pyproject's, .whl (as benchmarks/gpu_train_check.sh). One H100 call (timeout 600), repo root:
#   benchmarks/run_mixer_table.sh
# Environment (defaults): MODEL (the configs' hydra_vit_tiny; hydra_vit_small needs about four times
# the GPU time: fewer EPOCHS, or two calls with halves of MIXERS), EPOCHS (the configs' 10), MIXERS
# (all, in the registry's order), JOBS (5), WORKERS (3 loader processes per run), DEADLINE (450 s),
# STOP (560 s), OUT (.deviceout); DATA (/tmp/imagewoof2-128, used as it is when it exists), RUNS
# (/tmp/mixer_runs), OPTIONS and WHEELS as for benchmarks/run_concurrent.sh.
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=run_concurrent.sh
. benchmarks/run_concurrent.sh
export OUT=${OUT:-$PWD/.deviceout} MODEL=${MODEL:-} JOBS=${JOBS:-5} WORKERS=${WORKERS:-3} DEADLINE=${DEADLINE:-450}
export STOP=${STOP:-560} DATA=${DATA:-/tmp/imagewoof2-128} ARCHIVES=.data/imagewoof2-128.tar.gz
export RUNS=${RUNS:-/tmp/mixer_runs} OPTIONS="${MODEL:+--model $MODEL} ${OPTIONS:-}" TAG=mixer_runs
export REPORT='python3 benchmarks/mixer_table.py --runs "$RUNS" --throughput "$RUNS/throughput.jsonl" \
    --md "$OUT/mixer_table.md" --csv "$OUT/mixer_table.csv" ${MODEL:+--model "$MODEL"} | tee "$OUT/table.log"'
setup_device
if [ -z "${MIXERS:-}" ]; then
    MIXERS=$(python3 -c "from hydra_vision.layers.mixers import MIXERS; print(' '.join(MIXERS))")
fi
jobs=()
for m in $MIXERS; do jobs+=("$m=configs/mixers/$m.yaml"); done
run_concurrent "${jobs[@]}"
