#!/usr/bin/env bash
# One device call: install the package, then the chosen steps; logs and JSON lines go to $OUT.
#   benchmarks/gpu_check.sh [coldstart] [tests] [bench] [profile] [ncu] [models] [extract] [recompute] [graphs]
#                           [memory] [shell]
#   (default: the first four, ~9 min on an H100)
#     coldstart  two fresh processes on one empty Triton cache: first forward+backward (compile + autotune)
#     tests      tests/kernels/gpu at real sizes (not the `slow` L = 65,536 case: add ALL_TESTS=1), the fused
#                Hydra layer against the separate ops, the CUDA-graph extraction tests,
#                device-resize tests on CUDA and selective_recompute's test under CUDA autocast
#     bench      benchmarks/bench_mixer.py (BENCH_ARGS passes options through)
#     profile    torch.profiler table of the triton forward+backward at L = 197 and 4,097
#     ncu        Nsight Compute (--set full) of the mix kernels in one warm forward+backward at NCU_LENGTH (197):
#                the details page, each kernel's source page (CSV) and its stall summary (ncu_stalls.py);
#                needs hardware counters (KINDS.md: Firecracker machines)
#     models     benchmarks/bench_models.py (MODEL_ARGS passes options, e.g. the models and sizes)
#     extract    benchmarks/bench_extract.py on Imagewoof (carry .data/imagewoof2-128.tar.gz)
#     recompute  hydra_vit_base's 224 px training step without and with selective_recompute (speed, memory)
#     graphs     hydra_vit_tiny and deit_tiny training at 128 px: eager vs torch.compile's CUDA-graph mode,
#                and the eager step's profiler tables by GPU and by host time
#     memory     what is live at the peak of hydra_vit_base's 224 px training step, eager and compiled
#                (benchmarks/memory_peak.py)
#     shell      benchmarks/bench_shell.py: the conv, gated norm, LayerNorm and diagonal-backward kernels alone at
#                hydra_vit_base's shapes
# PYTEST_ADDOPTS picks tests for the tests step (e.g. PYTEST_ADDOPTS='-k "not low_precision"').
# Each step has its own time limit so that a slow step cannot starve the later ones.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.deviceout}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps=${*:-coldstart tests bench profile}
step_limit=${STEP_LIMIT:-300}
status=0

# shellcheck source=run_concurrent.sh
. benchmarks/run_concurrent.sh  # setup_device: carried .whl wheels into /tmp/site, the package editable
RUNS=$OUT setup_device
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
    # with pytest-xdist (carry its wheel in .whl), TEST_WORKERS processes compile the kernels' autotune
    # configs side by side; -v names each test as it ends, so a step cut by its limit still says what passed;
    # a test that hits a CUDA fault ends its worker (tests/conftest.py), so later tests run in a fresh one
    workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n ${TEST_WORKERS:-6}")
    timeout "${TEST_LIMIT:-330}" python3 -m pytest tests/kernels/gpu tests/kernels/test_quasiseparable_states.py \
        tests/layers/test_fused_layer.py \
        tests/features/test_device_resize.py tests/features/test_cuda_graphs.py \
        tests/models/test_selective_recompute.py::test_on_cuda_under_autocast_the_layernorm_copy_is_dropped_and_gradients_are_exact \
        -m "$marker" -v \
        $workers -p no:cacheprovider --durations=10 2>&1 \
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
if [[ " $steps " == *" shell "* ]]; then
    timeout "$step_limit" python3 benchmarks/bench_shell.py --out "$OUT/bench_shell.jsonl" 2>&1 | tee "$OUT/bench_shell.log"
fi
if [[ " $steps " == *" profile "* ]]; then
    timeout 120 python3 benchmarks/bench_mixer.py --profile --lengths 197 4097 2>&1 | tee "$OUT/profile.txt"
fi
if [[ " $steps " == *" ncu "* ]]; then
    rep=$OUT/ncu_mix
    timeout "$step_limit" ncu --clock-control none --profile-from-start off --set full --import-source yes \
        -k regex:'chunk_|_states_kernel' -f -o "$rep" \
        python3 benchmarks/bench_mixer.py --ncu-window --lengths "${NCU_LENGTH:-197}" > "$OUT/ncu.log" 2>&1
    ncu --import "$rep.ncu-rep" --page details > "$OUT/ncu_details.txt" 2>&1
    for kernel in chunk_products_kernel chunk_fwd_kernel chunk_bwd_pairs_kernel chunk_bwd_dx_kernel \
        chunk_bwd_bc_kernel; do
        ncu --import "$rep.ncu-rep" --page source --csv --print-source sass -k "$kernel" \
            > "$OUT/ncu_source_$kernel.csv" 2>&1
    done
    python3 benchmarks/ncu_stalls.py "$OUT"/ncu_source_*.csv | tee "$OUT/ncu_stalls.txt"
fi
if [[ " $steps " == *" models "* ]]; then
    timeout "$step_limit" python3 benchmarks/bench_models.py --out "$OUT/bench_models.jsonl" ${MODEL_ARGS:-} 2>&1 \
        | grep -v "^ *warnings.warn\|UserWarning" | tee "$OUT/bench_models.log" | grep -v '"kind": "case"'
    python3 benchmarks/bench_models.py --table "$OUT/bench_models.jsonl" | tee "$OUT/bench_models_table.md"
fi
if [[ " $steps " == *" extract "* ]]; then
    DATA=/tmp/imagewoof2-128 ARCHIVES=.data/imagewoof2-128.tar.gz extract_data
    timeout "$step_limit" python3 benchmarks/bench_extract.py --data /tmp/imagewoof2-128 --workers 8 \
        --out "$OUT/bench_extract.jsonl" ${EXTRACT_ARGS:-} 2>&1 | tee "$OUT/bench_extract.log" | tail -8
fi
if [[ " $steps " == *" recompute "* ]]; then
    for kwargs in selective_recompute=False selective_recompute=True; do
        timeout "$step_limit" python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 --modes train \
            --compile off --model-kwargs "$kwargs" 2>&1 | grep '"kind": "case"' | tee -a "$OUT/recompute.jsonl"
    done
fi
if [[ " $steps " == *" graphs "* ]]; then
    timeout "$step_limit" python3 benchmarks/bench_models.py --models hydra_vit_tiny deit_tiny_patch16_224 \
        --img-sizes 128 --modes train --compile off reduce-overhead --out "$OUT/graphs.jsonl" >"$OUT/graphs.log" 2>&1
    python3 benchmarks/bench_models.py --table "$OUT/graphs.jsonl" | tee "$OUT/graphs_table.md"
    timeout 120 python3 benchmarks/bench_models.py --models hydra_vit_tiny --img-sizes 128 --modes train --compile off \
        --quick --profile >"$OUT/tiny_profile.txt" 2>&1
fi
if [[ " $steps " == *" memory "* ]]; then
    for mode in off on; do
        timeout "$step_limit" python3 benchmarks/memory_peak.py --compile "$mode" 2>&1 | tee "$OUT/memory_peak_$mode.jsonl"
    done
fi
exit "$status"
