#!/usr/bin/env bash
# The mixer comparison on Imagewoof (docs/mixers.md) in one device call: every configs/mixers/*.yaml
# (one recipe, only `mixer` differs) on one GPU, then the table.
#   1. one train_imagenet.py run per mixer, JOBS at a time on the same GPU; runs still going at
#      DEADLINE seconds after the start get SIGTERM (the trainer saves and exits; the table says so),
#      runs that would start with less than 60 s left do not start
#   2. each mixer's training step with the GPU to itself (benchmarks/train_throughput.py, 128 px,
#      batch 128) until STOP seconds after the start
#   3. benchmarks/mixer_table.py: params, epochs, top-1 (last, best), top-5, img/s -> $OUT/mixer_table.md
# Carry .data (imagewoof2-128.tar.gz from ../shared/datasets) and, where the device's timm is older
# than pyproject's, .whl (as benchmarks/gpu_train_check.sh). One H100 call (timeout 600), repo root:
#   benchmarks/run_mixer_table.sh
# Environment (defaults): MODEL (the configs' hydra_vit_tiny; hydra_vit_small needs about four times
# the GPU time: fewer EPOCHS, or two calls with halves of MIXERS), EPOCHS (the configs' 10), MIXERS
# (all, in the registry's order), JOBS (5), WORKERS (3 loader processes per run), DEADLINE (450 s),
# STOP (560 s), OUT (.deviceout).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
OUT=${OUT:-$PWD/.deviceout}
MODEL=${MODEL:-}
JOBS=${JOBS:-5}
WORKERS=${WORKERS:-3}
DEADLINE=${DEADLINE:-450}
STOP=${STOP:-560}
DATA=/tmp/imagewoof2-128
RUNS=/tmp/mixer_runs
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1 \
    || { cat "$OUT/install.log"; exit 1; }
[ -d "$DATA" ] || tar -xzf .data/imagewoof2-128.tar.gz -C /tmp || { echo "no .data/imagewoof2-128.tar.gz"; exit 1; }
if [ -z "${MIXERS:-}" ]; then
    MIXERS=$(python3 -c "from hydra_vision.layers.mixers import MIXERS; print(' '.join(MIXERS))")
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
echo "model ${MODEL:-from configs}, epochs ${EPOCHS:-from configs}, jobs $JOBS x $WORKERS workers," \
    "cpus $(nproc)" | tee -a "$OUT/gpu.txt"

run_one() {
    local m=$1 left=$(( DEADLINE - ($(date +%s) - start) ))
    if (( left < 60 )); then echo "$m: not started (deadline)"; return; fi
    timeout -s TERM -k 20 "$left" python3 train_imagenet.py -c "configs/mixers/$m.yaml" ${MODEL:+--model "$MODEL"} \
        --data-dir "$DATA" --output "$RUNS" --experiment "$m" -j "$WORKERS" ${EPOCHS:+--epochs "$EPOCHS"} \
        >"$RUNS/$m.log" 2>&1
    local status=$?
    echo "$status" >"$RUNS/$m.exit"
    echo "$m: exit $status, at $(( $(date +%s) - start )) s"
}
export -f run_one
export start DEADLINE MODEL DATA RUNS WORKERS EPOCHS
printf '%s\n' $MIXERS | xargs -P "$JOBS" -I{} bash -c 'run_one {}'

configs=()
for m in $MIXERS; do configs+=("configs/mixers/$m.yaml"); done
left=$(( STOP - ($(date +%s) - start) ))
if (( left > 20 )); then
    timeout "$left" python3 benchmarks/train_throughput.py --configs "${configs[@]}" --steps 10 --warmup 3 \
        --out "$OUT/throughput.jsonl" --options ${MODEL:+--model "$MODEL"} >"$RUNS/throughput.log" 2>&1
    echo "throughput alone: exit $?, at $(( $(date +%s) - start )) s"
fi

python3 benchmarks/mixer_table.py --runs "$RUNS" --throughput "$OUT/throughput.jsonl" --md "$OUT/mixer_table.md" \
    --csv "$OUT/mixer_table.csv" ${MODEL:+--model "$MODEL"} | tee "$OUT/table.log"
tar -czf "$OUT/mixer_runs.tgz" --exclude='*.pth.tar' --exclude='*.safetensors' -C "$RUNS" .
echo "total $(( $(date +%s) - start )) s"
