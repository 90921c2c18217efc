#!/usr/bin/env bash
# Issue 7's experiments (docs/experiments.md), one or several per device call, through
# benchmarks/run_concurrent.sh (all runs of the named experiments at once on one GPU):
#   benchmarks/run_experiments.sh EXPERIMENT [EXPERIMENT ...]   (all on one dataset)
# Each experiment is configs/experiments/EXPERIMENT.yaml (its runs: a config of configs/imagewoof or
# configs/cifar10 and options; its seeds); `python benchmarks/experiment_jobs.py --list` lists them.
# One run folder per run and seed (NAME-sSEED);
# then each experiment's training step alone (img/s, with its options) and benchmarks/experiment_table.py.
# Carry .whl and the data: .data/imagewoof2-128.tar.gz (woof-*) or the three .data/cifar10-jpeg_*.tar.gz
# (cifar*), copied from ../shared/datasets. One H100 call (timeout 600). $OUT gets <experiments>.tgz (the run folders
# without checkpoints: logs, args.yaml, summary.csv, steps.csv, curves.png; jobs.tsv, throughput.jsonl,
# results.csv, ema_top1.png), table.md, and with COPY_SUMMARIES=1 each run's summary.csv as
# <run>/summary.csv (at most 8 files come back from a call: leave it off beyond 6 runs).
# Environment (defaults): EPOCHS (the configs': 16 Imagewoof, 20 CIFAR-10), SEEDS (the experiments'),
# JOBS (all runs at once), WORKERS (CPUs / JOBS), DEADLINE (470 s: SIGTERM, the trainer saves),
# WALL_EPOCHS (auto: measured; woof-wallclock's epochs), STOP (540 s: end of the throughput step),
# DATA (/tmp/imagewoof2-128 or /tmp/cifar10-jpeg; an existing folder is used as it is), ARCHIVES (the
# .data files above), RUNS (/tmp/issue7/<experiments>; a run with interrupted.pth.tar or last.pth.tar
# there resumes), OUT (.deviceout), OPTIONS (more train_imagenet.py options, every run),
# KNN (1: after the table, k-NN top-1/top-5 of each seed-0 run's EMA features -> RUNS/knn.jsonl).
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=run_concurrent.sh
. benchmarks/run_concurrent.sh  # setup_device, for WALL_EPOCHS=auto
export START  # deadlines count from here, the measurement for WALL_EPOCHS=auto included
(( $# > 0 )) || { echo "usage: $0 EXPERIMENT ..."; python3 benchmarks/experiment_jobs.py --list; exit 2; }
woof=configs/imagewoof
tag=$(IFS=_; echo "$*")  # $OUT file names: letters, digits, ".", "_", "-" only
export RUNS=${RUNS:-/tmp/issue7/$tag}
# The epochs deit_tiny trains in the time hydra_vit_tiny takes for its config's epochs: both training
# steps alone on this GPU (benchmarks/train_throughput.py) -> RUNS/throughput.jsonl (the table's img/s alone).
wall_clock_epochs() {
    local measured=$RUNS/throughput.jsonl device=cpu
    command -v nvidia-smi >/dev/null && device=cuda
    mkdir -p "$RUNS"
    setup_device >&2
    python3 benchmarks/train_throughput.py --configs $woof/hydra_vit_tiny.yaml $woof/deit_tiny.yaml --steps 20 \
        --warmup 5 --device $device --out "$measured" >&2 || return 1
    python3 - "$measured" $woof/hydra_vit_tiny.yaml <<'PY'
import json, sys, yaml
rates = {r["config"]: r["images_per_s"] for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "train_step"}
epochs = yaml.safe_load(open(sys.argv[2]))["epochs"]
print(round(epochs * rates["deit_tiny"] / rates["hydra_vit_tiny"]))
PY
}
dataset=$(python3 benchmarks/experiment_jobs.py "$@" --dataset) || exit 2
wall=()  # woof-wallclock's epochs: WALL_EPOCHS, measured when auto
if python3 benchmarks/experiment_jobs.py "$@" --uses-wall-epochs; then
    if [ "${WALL_EPOCHS:-auto}" = auto ]; then WALL_EPOCHS=$(wall_clock_epochs) || exit 1; fi
    wall=(--wall-epochs "$WALL_EPOCHS")
fi
# shellcheck disable=SC2086  # SEEDS is a space-separated list
mapfile -t jobs < <(python3 benchmarks/experiment_jobs.py "$@" ${SEEDS:+--seeds $SEEDS} "${wall[@]}")
(( ${#jobs[@]} > 0 )) || exit 2
if [ "$dataset" = cifar10 ]; then
    DATA=${DATA:-/tmp/cifar10-jpeg} ARCHIVES=${ARCHIVES:-$(echo .data/cifar10-jpeg_*.tar.gz)}
else
    DATA=${DATA:-/tmp/imagewoof2-128} ARCHIVES=${ARCHIVES:-.data/imagewoof2-128.tar.gz}
fi
export DATA ARCHIVES SEEDS="" DEADLINE=${DEADLINE:-470} STOP=${STOP:-540} TAG=$tag COPY_SUMMARIES=${COPY_SUMMARIES:-1}
export REPORT='python3 benchmarks/experiment_table.py --runs "$RUNS" --md "$OUT/table.md" --csv "$RUNS/results.csv" \
    --png "$RUNS/ema_top1.png" | tee "$RUNS/table.log"'
if [ "${KNN:-0}" = 1 ]; then  # k-NN of each seed-0 run's EMA features (benchmarks/knn_runs.sh)
    REPORT+='; benchmarks/knn_runs.sh "$RUNS" "$DATA" --workers "$(nproc)" --batch-size 256 | tee "$RUNS/knn.jsonl"'
fi
exec benchmarks/run_concurrent.sh "${jobs[@]}"
