#!/usr/bin/env bash
# A/B of git branches in one device call: each branch runs in a fresh process from its own source tree.
#   Here:    bash benchmarks/ab_branches.sh pack BRANCH...
#            -> $AB_DIR/BRANCH/ (hydra_vision, kernels, benchmarks, tests, pyproject.toml of that branch;
#            AB_DIR defaults to .ab, git-ignored: carry it with the run). Pack again after new commits.
#   Device:  bash benchmarks/ab_branches.sh run BRANCH...
#            AB=mixer (default): bench_mixer.py forward+backward with AB_ARGS
#                (default "--cases triton --lengths 197 4097 16385") -> $OUT/ab_BRANCH.jsonl, "L mode case ms".
#                Each tree runs its own bench_mixer.py, whose default chunk is the models' rule from 0cc7df9 on and
#                256 before (where "auto" meant timed): with older trees, pass --chunk-size N in AB_ARGS.
#            AB=models: hydra_vit_base's eager 224 px training step (AB_ARGS adds options, e.g. --kernel-times 60)
#                -> $OUT/ab_models_BRANCH.jsonl, "model img/s gpu_ms GiB". The eager step at 224 px is host-bound
#                on the H200: compare GPU-side changes by gpu_ms (the GPU's busy time per step), not by img/s.
#            Before each run the tree's import of hydra_vision.kernels is checked to resolve inside its packed copy
#            (exit 1 otherwise): a PYTHONPATH that misses the copy silently measures the installed checkout.
#            AB=shell: bench_shell.py (conv, gated norm, LayerNorm, diagonal alone) with AB_ARGS
#                -> $OUT/ab_shell_BRANCH.jsonl,
#                "op batch L mode ms kernels_us"
# A branch name's '/' becomes '_' in paths. The first branch pays the Triton compile and autotune of
# every kernel it runs; later ones recompile only what changed (same Triton cache).
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=run_concurrent.sh
. benchmarks/run_concurrent.sh  # packed_tree, setup_device
mode=${1:?usage: ab_branches.sh pack|run BRANCH...}
shift
if [ "$mode" = pack ]; then
    for branch in "$@"; do
        dir=$(packed_tree "$branch")
        rm -rf "$dir" && mkdir -p "$dir"
        git archive "$branch" hydra_vision kernels benchmarks tests pyproject.toml | tar -x -C "$dir" || exit 1
    done
    exit 0
fi
[ "$mode" = run ] || { echo "unknown mode '$mode': pack or run" >&2; exit 2; }
for branch in "$@"; do
    [ -d "$(packed_tree "$branch")" ] || { echo "no packed tree for $branch (run 'pack' first)" >&2; exit 1; }
done
OUT=${OUT:-$PWD/.deviceout}
mkdir -p "$OUT"
RUNS=$OUT setup_device >/dev/null 2>&1
for branch in "$@"; do
    name=${branch//\//_}
    dir=$(packed_tree "$branch")
    echo "== $branch"
    imported=$(cd "$dir" && PYTHONPATH=$dir:${PYTHONPATH:-} python3 -c \
        "import os, hydra_vision.kernels as k; print(os.path.realpath(os.path.dirname(k.__file__)))" 2>&1)
    if [[ "$imported" != "$(realpath "$dir")"/* ]]; then
        echo "$branch imports hydra_vision.kernels from '$imported', not from its packed tree $dir" >&2
        exit 1
    fi
    if [ "${AB:-mixer}" = models ]; then
        # shellcheck disable=SC2086  # AB_ARGS is a list of options
        (cd "$dir" && PYTHONPATH=$dir:${PYTHONPATH:-} timeout 300 python3 benchmarks/bench_models.py \
            --models hydra_vit_base --img-sizes 224 --modes train --compile off --quick ${AB_ARGS:-} \
            --out "$OUT/ab_models_$name.jsonl" >/dev/null 2>&1)
        grep '"case"' "$OUT/ab_models_$name.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['model'], r['img_s'], 'img/s', r.get('gpu_ms'), 'gpu_ms', r['peak_gib'], 'GiB')"
    elif [ "${AB:-mixer}" = shell ]; then
        # shellcheck disable=SC2086  # AB_ARGS is a list of options
        (cd "$dir" && PYTHONPATH=$dir:${PYTHONPATH:-} timeout 300 python3 benchmarks/bench_shell.py ${AB_ARGS:-} \
            --out "$OUT/ab_shell_$name.jsonl" >/dev/null 2>&1)
        grep '"case"' "$OUT/ab_shell_$name.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['op'], r['batch'], r['L'], r['mode'], r['ms'], r['kernels_us'])"
    else
        # shellcheck disable=SC2086  # AB_ARGS is a list of options
        (cd "$dir" && PYTHONPATH=$dir:${PYTHONPATH:-} timeout 300 python3 benchmarks/bench_mixer.py --modes fwdbwd \
            ${AB_ARGS:---cases triton --lengths 197 4097 16385} --out "$OUT/ab_$name.jsonl" >/dev/null 2>&1)
        grep '"case"' "$OUT/ab_$name.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['L'], r['mode'], r['case'], r['ms'])"
    fi
done
