#!/usr/bin/env bash
# One device call: install the package, run the GPU test subset, then the mixer benchmark
# (and a profile of the triton forward+backward). Logs and JSON lines go to $OUT.
#   benchmarks/gpu_check.sh [coldstart] [tests] [bench] [profile]      (default: all four)
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

if [[ " $steps " == *" coldstart "* ]]; then  # two fresh processes on one empty Triton cache
    export TRITON_CACHE_DIR=$(mktemp -d)
    for run in first second; do
        python3 benchmarks/bench_mixer.py --cold-start --lengths 197 --out "$OUT/cold_start.jsonl" | tail -1
    done
    unset TRITON_CACHE_DIR
fi
if [[ " $steps " == *" tests "* ]]; then
    start=$(date +%s)
    CUDA_LAUNCH_BLOCKING=${TEST_LAUNCH_BLOCKING:-0} python3 -m pytest tests/kernels/gpu tests/kernels/test_quasiseparable_triton.py tests/kernels/test_ssd_causal.py \
        -q -p no:cacheprovider --durations=10 2>&1 | tee "$OUT/gpu_tests.log"
    status=${PIPESTATUS[0]}
    echo "tests: exit $status, $(( $(date +%s) - start )) s (includes Triton compilation)"
fi
if [[ " $steps " == *" bench "* ]]; then
    rm -f "$OUT/bench_mixer.jsonl"
    python3 benchmarks/bench_mixer.py --out "$OUT/bench_mixer.jsonl" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_mixer.log"
fi
if [[ " $steps " == *" profile "* ]]; then
    python3 benchmarks/bench_mixer.py --profile --lengths 197 4097 2>&1 | tee "$OUT/profile.txt"
fi
exit "$status"
