#!/usr/bin/env bash
# k-NN feature quality of trained runs (issue 6's protocol on issue 7's models): for every run folder
# RUNS/*-s0 that holds model_best.pth.tar, `hydra-vision extract` of DATA/train and DATA/val with the
# checkpoint's EMA weights (the run's model, model_kwargs and pooling from its args.yaml), then
# `hydra-vision knn` (cosine, k = 20, weighted) -> RUN/knn.json, one JSON line per run on stdout, and
# RUN/val.pca.png (8 val images over their patch-feature PCA maps, `extract --visualize`).
#   benchmarks/knn_runs.sh RUNS DATA [extract option ...]     (e.g. --device cpu --batch-size 8)
# The feature files stay in the run folders (run_concurrent.sh packs them out of the .tgz).
set -uo pipefail
runs=${1:?usage: knn_runs.sh RUNS DATA [extract option ...]} data=${2:?usage: knn_runs.sh RUNS DATA}
shift 2
for run in "$runs"/*-s0; do
    [ -f "$run/model_best.pth.tar" ] || continue
    # model, pooling and key=value model kwargs of the run, as its trainer resolved them
    read -r model pool kwargs < <(python3 -c '
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from run_records import read_args
args = read_args(Path(sys.argv[2]))
kwargs = " ".join(f"{k}={v}" for k, v in (args.get("model_kwargs") or {}).items())
print(args["model"], args.get("gp") or "default", kwargs)' "$(dirname "$0")" "$run") || continue
    options=(--model "$model" --checkpoint "$run/model_best.pth.tar" --ema --quiet)
    [ "$pool" = default ] || options+=(--pool "$pool")
    # shellcheck disable=SC2206
    [ -z "$kwargs" ] || options+=(--model-kwargs $kwargs)
    for split in train val; do
        picture=$([ "$split" = val ] && echo "--visualize 8")  # RUN/val.pca.png: patch-feature PCA maps
        # shellcheck disable=SC2086
        python3 -m hydra_vision.cli extract "$data/$split" "${options[@]}" $picture "$@" --out "$run/$split.safetensors" \
            >"$run/extract_$split.log" 2>&1 || { echo "extract $split of $run failed, see $run/extract_$split.log"; continue 2; }
    done
    python3 -m hydra_vision.cli knn --train "$run/train.safetensors" --val "$run/val.safetensors" --out "$run/knn.json" \
        >"$run/knn.log" 2>&1 || { echo "knn of $run failed, see $run/knn.log"; continue; }
    python3 -c 'import json, sys; print(json.dumps({"run": sys.argv[2], **json.load(open(sys.argv[1]))}))' \
        "$run/knn.json" "$(basename "$run")"
done
