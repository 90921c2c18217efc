#!/usr/bin/env bash
# Issue 7's experiments (docs/experiments.md), one device call each, through benchmarks/run_concurrent.sh:
#   benchmarks/run_experiments.sh woof-headline   hydra_vit_tiny, deit_tiny x seeds 0 1 2: 6 runs at once
#   benchmarks/run_experiments.sh woof-small      hydra_vit_small, deit_small, seed 0
#   benchmarks/run_experiments.sh woof-ablations  hydra_vit_tiny without shift / diagonal / both, class token
#   benchmarks/run_experiments.sh cifar           hydra_vit_tiny, deit_tiny on CIFAR-10, seed 0
#   benchmarks/run_experiments.sh woof-droppath   the drop-path grid, same for both models: hydra_vit_tiny,
#                                                 deit_tiny x drop path 0.0 and 0.2, seed 0 (0.1, the configs'
#                                                 value, is the headline's seed 0)
# configs/imagewoof/*.yaml or configs/cifar10/*.yaml, one run folder per config and seed (NAME-sSEED);
# then each config's training step alone (img/s) and benchmarks/experiment_table.py. Carry .whl and the
# data: .data/imagewoof2-128.tar.gz (woof-*) or the three .data/cifar10-jpeg_*.tar.gz (cifar), copied
# from ../shared/datasets. One H100 call each (timeout 600). $OUT gets <experiment>.tgz (the run folders
# without checkpoints: logs, args.yaml, summary.csv, steps.csv, curves.png; jobs.tsv, throughput.jsonl,
# results.csv, ema_top1.png), each run's summary.csv as <run>/summary.csv, and table.md.
# Environment (defaults): EPOCHS (the configs': 100 Imagewoof, 30 CIFAR-10), SEEDS (0 1 2 headline, else
# 0), JOBS (all runs at once), WORKERS (CPUs / JOBS), DEADLINE (470 s: SIGTERM, the trainer saves),
# STOP (540 s: end of the throughput step), DATA (/tmp/imagewoof2-128 or /tmp/cifar10-jpeg; an existing
# folder is used as it is), ARCHIVES (the .data files above), RUNS (/tmp/issue7/<experiment>; a run
# with last.pth.tar there resumes), OUT (.deviceout), OPTIONS (more train_imagenet.py options, every run).
cd "$(dirname "$0")/.." || exit 1
experiment=${1:-}
case $experiment in
    woof-headline) configs="hydra_vit_tiny deit_tiny"; SEEDS=${SEEDS:-0 1 2} ;;
    woof-small) configs="hydra_vit_small deit_small" ;;
    woof-ablations) configs="no_shift no_diag add cls_token" ;;
    cifar) configs="hydra_vit_tiny deit_tiny" ;;
    woof-droppath) configs="" ;;
    *) echo "usage: $0 woof-headline|woof-small|woof-ablations|cifar|woof-droppath"; exit 2 ;;
esac
if [ "$experiment" = cifar ]; then
    folder=configs/cifar10 DATA=${DATA:-/tmp/cifar10-jpeg} ARCHIVES=${ARCHIVES:-$(echo .data/cifar10-jpeg_*.tar.gz)}
else
    folder=configs/imagewoof DATA=${DATA:-/tmp/imagewoof2-128} ARCHIVES=${ARCHIVES:-.data/imagewoof2-128.tar.gz}
fi
export DATA ARCHIVES SEEDS=${SEEDS:-0} DEADLINE=${DEADLINE:-470} STOP=${STOP:-540} TAG=$experiment COPY_SUMMARIES=1
export RUNS=${RUNS:-/tmp/issue7/$experiment}
export REPORT='python3 benchmarks/experiment_table.py --runs "$RUNS" --md "$OUT/table.md" --csv "$RUNS/results.csv" \
    --png "$RUNS/ema_top1.png" | tee "$RUNS/table.log"'
jobs=()
for c in $configs; do jobs+=("$c=$folder/$c.yaml"); done
if [ "$experiment" = woof-droppath ]; then
    for c in hydra_vit_tiny deit_tiny; do
        for dp in 0.0 0.2; do jobs+=("${c}_dp$dp=$folder/$c.yaml --drop-path $dp"); done
    done
fi
exec benchmarks/run_concurrent.sh "${jobs[@]}"
