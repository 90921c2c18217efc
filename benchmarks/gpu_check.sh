#!/usr/bin/env bash
# One device call: install the package, then the chosen steps; logs and JSON lines go to $OUT.
#   benchmarks/gpu_check.sh [coldstart] [tests] [bench] [profile]     (default: all four, ~9 min on an H100)
#     coldstart  two fresh processes on one empty Triton cache: first forward+backward (compile + autotune)
#     tests      tests/kernels/gpu at real sizes (not the `slow` L = 65,536 case: add ALL_TESTS=1)
#     bench      benchmarks/bench_mixer.py (BENCH_ARGS passes options through)
#     profile    torch.profiler table of the triton forward+backward at L = 197 and 4,097
# Each step has its own time limit so that a slow step cannot starve the later ones.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.deviceout}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps=${*:-coldstart tests bench profile}
status=0

if [ -d .whl ]; then  # wheels carried to an offline device (timm newer than the image's)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"

if [[ " $steps " == *" coldstart "* ]]; then
    export TRITON_CACHE_DIR=$(mktemp -d)
    for run in first second; do
        timeout 120 python3 benchmarks/bench_mixer.py --cold-start --lengths 197 --out "$OUT/cold_start.jsonl" | tail -1
    done
    unset TRITON_CACHE_DIR
fi
if [[ " $steps " == *" tests "* ]]; then
    start=$(date +%s)
    marker=$([ -n "${ALL_TESTS:-}" ] && echo "" || echo "not slow")
    timeout 330 python3 -m pytest tests/kernels/gpu -m "$marker" -q -p no:cacheprovider --durations=10 2>&1 \
        | tee "$OUT/gpu_tests.log"
    status=${PIPESTATUS[0]}
    echo "tests: exit $status, $(( $(date +%s) - start )) s (includes Triton compilation)"
fi
if [[ " $steps " == *" bench "* ]]; then
    rm -f "$OUT/bench_mixer.jsonl"
    timeout 300 python3 benchmarks/bench_mixer.py --out "$OUT/bench_mixer.jsonl" ${BENCH_ARGS:-} 2>&1 \
        | tee "$OUT/bench_mixer.log"
    python3 benchmarks/bench_mixer.py --table "$OUT/bench_mixer.jsonl" | tee "$OUT/bench_mixer_table.md"
fi
if [[ " $steps " == *" profile "* ]]; then
    timeout 120 python3 benchmarks/bench_mixer.py --profile --lengths 197 4097 2>&1 | tee "$OUT/profile.txt"
fi
exit "$status"
