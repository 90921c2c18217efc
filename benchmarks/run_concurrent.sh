#!/usr/bin/env bash
# Several train_imagenet.py runs at once on one GPU, within a deadline, in one device call.
#   benchmarks/run_concurrent.sh "NAME=CONFIG [OPTION ...]" ...
# A job names its run folder and config, then train_imagenet.py options of that run only (split at
# spaces: no quoting). Steps, each timed from the script's start (START, epoch seconds):
#   1. setup: WHEELS/*.whl into /tmp/site (PYTHONPATH) as benchmarks/gpu_train_check.sh does, the package
#      installed editable where python3 cannot import it yet; DATA extracted from ARCHIVES (globs under
#      the repo root, e.g. .data/imagewoof2-128.tar.gz) into DATA's parent, unless DATA exists
#   2. the runs, JOBS at a time:  train_imagenet.py -c CONFIG --data-dir DATA --output RUNS --experiment
#      NAME -j WORKERS [--epochs EPOCHS] [--seed S] [--resume RUNS/NAME/last.pth.tar] OPTIONS JOB-OPTIONS
#      With SEEDS, every job runs once per seed as NAME-sS with --seed S (seed-major order, so the
#      runs of one seed start together). A run folder that holds interrupted.pth.tar or last.pth.tar
#      (an earlier call on the same warm machine) is resumed from it (the first of the two). Runs still
#      going DEADLINE s after the start get SIGTERM, the trainer process alone (it saves
#      interrupted.pth.tar, or finishes and saves an epoch stopped at its last update, and exits;
#      exit 124); runs that would start with less than 60 s left do not start.
#      RUNS/NAME.log is a run's output; RUNS/jobs.tsv gets one line per run: name, exit code ('-': not
#      started), wall seconds
#   3. with STOP > 0: each experiment's training step with the GPU to itself (benchmarks/train_throughput.py,
#      10 steps after 3, batch 128, OPTIONS and the job's options but --seed/--epochs applied, named
#      as the run without -sSEED; names RUNS/throughput.jsonl already has are skipped) until STOP s
#      after the start -> RUNS/throughput.jsonl
#   4. REPORT, a bash command run with RUNS and OUT exported (a table script)
#   5. $OUT/TAG.tgz: RUNS without checkpoints (logs, args.yaml, CSVs, curves, jobs.tsv, setup logs);
#      with COPY_SUMMARIES=1 also every run's summary.csv as $OUT/NAME/summary.csv
# Environment (defaults): DATA (required), ARCHIVES (none), RUNS (/tmp/runs), OUT (.deviceout), JOBS
# (all at once), WORKERS (loader processes per run: CPUs / JOBS, at least 1), DEADLINE (480), STOP (0),
# EPOCHS (the configs'), SEEDS (the configs' seed, names as given), OPTIONS (every run), REPORT, TAG
# (runs), COPY_SUMMARIES (0), WHEELS (.whl; empty: install none). Sourced, it only defines the
# functions (callers that need the package before their jobs exist call setup_device, then run_concurrent).
set -uo pipefail
START=${START:-$(date +%s)}

elapsed() { echo $(( $(date +%s) - START )); }

# Install the wheels and the package (once per machine); exit on failure.
setup_device() {
    local log=${RUNS:-/tmp/runs}/install.log
    mkdir -p "$(dirname "$log")"
    local wheels=${WHEELS-.whl}
    if [ -n "$wheels" ] && compgen -G "$wheels/*.whl" >/dev/null; then
        [ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site "$wheels"/*.whl >>"$log" 2>&1 || { cat "$log"; exit 1; }
        [[ ":${PYTHONPATH:-}:" == *:/tmp/site:* ]] || export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    (cd / && python3 -c "import hydra_vision" 2>/dev/null) \
        || python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$log" 2>&1 || { cat "$log"; exit 1; }
}

# For a device call script: OUT becomes the work folder $OUT/w, which `archive` packs into the call's own
# $OUT/TAG.tgz (after each step, so a call cut off by its limit keeps what ran; the device returns at most 8
# files) and `end_archived_call` packs a last time and removes.
start_archived_call() {
    ARCHIVE_TAG=$1
    FINAL=$OUT
    mkdir -p "$FINAL/w"
    export OUT=$FINAL/w
}
archive() { (cd "$FINAL" && tar czf "$ARCHIVE_TAG.tgz" w); }
end_archived_call() { archive; rm -rf "$FINAL/w"; }
# start_archived_call TAG, then the package installed (setup_device, its log in the work folder) and the GPU
# recorded in $OUT/gpu.txt: the opening of every device call script.
start_device_call() {
    start_archived_call "$1"
    RUNS=$OUT setup_device
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv >"$OUT/gpu.txt"
}
# packed_tree BRANCH: the folder `ab_branches.sh pack` unpacks BRANCH into (AB_DIR, default .ab; '/' -> '_').
packed_tree() { echo "${AB_DIR:-$PWD/.ab}/${1//\//_}"; }
# in_packed_tree BRANCH COMMAND...: COMMAND run in BRANCH's packed tree, importing that tree (and /tmp/site).
in_packed_tree() {
    local tree
    tree=$(packed_tree "$1")
    shift
    (cd "$tree" && PYTHONPATH=$tree:/tmp/site "$@")
}
# packed_gpu_tests BRANCH SECONDS TEST...: pytest TEST... in BRANCH's packed tree under a timeout
# -> $OUT/gpu_tests.log (its last lines printed); then archive.
packed_gpu_tests() {
    local branch=$1 seconds=$2
    shift 2
    in_packed_tree "$branch" timeout "$seconds" python3 -m pytest "$@" -q -n 6 -p no:cacheprovider \
        >"$OUT/gpu_tests.log" 2>&1
    tail -3 "$OUT/gpu_tests.log"
    archive
}
# packed_models_table BRANCH SECONDS: the models table of BRANCH's packed tree (bench_models.py: hydra_vit_base and
# vit_base_patch16_224 at every size, training and inference, eager, --quick, the 8 top kernels) under a timeout
# -> $OUT/models.jsonl and models.log, the table printed; then archive.
packed_models_table() {
    in_packed_tree "$1" timeout "$2" python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
        --compile off --quick --kernel-times 8 --out "$OUT/models.jsonl" >"$OUT/models.log" 2>&1
    in_packed_tree "$1" python3 benchmarks/bench_models.py --table "$OUT/models.jsonl"
    archive
}
# ab_run DIR SECONDS BRANCH...: `ab_branches.sh run BRANCH...` (AB, AB_ARGS as set) into $OUT/DIR under a timeout
# (its last lines printed); then archive.
ab_run() {
    local dir=$OUT/$1 seconds=$2
    shift 2
    mkdir -p "$dir" && OUT=$dir timeout "$seconds" bash benchmarks/ab_branches.sh run "$@" 2>&1 | tail -12
    archive
}

# Extract ARCHIVES into DATA's parent unless DATA exists; exit when DATA is still missing.
extract_data() {
    if [ ! -d "$DATA" ]; then
        local archive
        for archive in ${ARCHIVES:-}; do
            [ -f "$archive" ] || { echo "missing $archive (copy it from ../shared/datasets and carry it)"; exit 1; }
            mkdir -p "$(dirname "$DATA")"
            tar -xzf "$archive" -C "$(dirname "$DATA")" || exit 1
        done
    fi
    [ -d "$DATA" ] || { echo "no dataset at DATA=$DATA (set ARCHIVES to extract it)"; exit 1; }
}

# One run: "NAME=CONFIG [OPTION ...]"; appends its line to RUNS/jobs.tsv.
run_one() {
    local name=${1%%=*} rest=${1#*=} config options left t0 status
    read -r config options <<<"$rest"
    left=$(( DEADLINE - $(elapsed) ))
    if (( left < 60 )); then
        printf '%s\t-\t0\n' "$name" >>"$RUNS/jobs.tsv"
        echo "$name: not started (deadline)"
        return
    fi
    local resume=() checkpoint
    for checkpoint in interrupted last; do  # a mid-epoch stop continues; else the last epoch's end
        [ -f "$RUNS/$name/$checkpoint.pth.tar" ] && { resume=(--resume "$RUNS/$name/$checkpoint.pth.tar"); break; }
    done
    t0=$(date +%s)
    # --foreground: the signal goes to the trainer alone, which stops at a step, saves and ends its
    # loader and compile workers itself (not the whole process group at once)
    # shellcheck disable=SC2086  # OPTIONS and the job's options are space-separated lists
    timeout --foreground -s TERM -k 20 "$left" python3 train_imagenet.py -c "$config" --data-dir "$DATA" \
        --output "$RUNS" --experiment "$name" -j "$WORKERS" ${EPOCHS:+--epochs "$EPOCHS"} "${resume[@]}" \
        ${OPTIONS:-} $options >>"$RUNS/$name.log" 2>&1
    status=$?
    printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" >>"$RUNS/jobs.tsv"
    echo "$name: exit $status, at $(elapsed) s${resume:+ (resumed)}"
}

# The jobs of "$@" (expanded over SEEDS), JOBS at a time.
run_jobs() {
    local jobs=() seed spec cpus
    cpus=$(env -u OMP_NUM_THREADS nproc)
    if [ -n "${SEEDS:-}" ]; then
        for seed in $SEEDS; do
            for spec in "$@"; do jobs+=("${spec%%=*}-s$seed=${spec#*=} --seed $seed"); done
        done
    else
        jobs=("$@")
    fi
    JOBS=${JOBS:-${#jobs[@]}}
    WORKERS=${WORKERS:-$(( cpus / JOBS > 0 ? cpus / JOBS : 1 ))}
    [ -f "$RUNS/jobs.tsv" ] || printf 'name\texit\twall_s\n' >"$RUNS/jobs.tsv"
    echo "${#jobs[@]} runs, $JOBS at a time x $WORKERS loader processes, cpus $cpus, epochs ${EPOCHS:-from configs}," \
        "deadline $DEADLINE s" | tee -a "$RUNS/gpu.txt"
    export -f run_one elapsed
    export START DEADLINE DATA RUNS WORKERS EPOCHS OPTIONS
    printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P "$JOBS" -I{} bash -c 'run_one "$1"' _ {}
}

# Each experiment's training step alone until STOP s after the start: one record per run name
# without its -sSEED suffix, with the job's options but --seed/--epochs (CUDA graphs, fp16, ...).
measure_throughput() {
    local spec name config options word skip left device=cpu measured=() job_options
    command -v nvidia-smi >/dev/null && device=cuda
    for spec in "$@"; do
        name=${spec%%=*} name=${name%-s[0-9]*}
        read -r config options <<<"${spec#*=}"
        [[ " ${measured[*]} " == *" $name "* ]] && continue
        measured+=("$name")
        # timed already (e.g. by run_experiments.sh's WALL_EPOCHS=auto): not again
        grep -qs "\"kind\": \"train_step\", \"config\": \"$name\"" "$RUNS/throughput.jsonl" && continue
        left=$(( STOP - $(elapsed) ))
        if (( left <= 20 )); then echo "throughput alone: $name skipped (STOP)"; continue; fi
        job_options=() skip=0
        for word in $options; do  # the run's options without its seed and length
            if (( skip )); then skip=0; continue; fi
            case $word in --seed|--epochs) skip=1 ;; *) job_options+=("$word") ;; esac
        done
        # shellcheck disable=SC2086
        timeout "$left" python3 benchmarks/train_throughput.py --configs "$config" --label "$name" --steps 10 \
            --warmup 3 --device "$device" --out "$RUNS/throughput.jsonl" --options ${OPTIONS:-} "${job_options[@]}" \
            >>"$RUNS/throughput.log" 2>&1
        echo "throughput alone: $name exit $?, at $(elapsed) s"
    done
}

# $OUT/TAG.tgz without checkpoints and, with COPY_SUMMARIES=1, the runs' summary.csv files.
pack_runs() {
    tar -czf "$OUT/${TAG:-runs}.tgz" --exclude='*.pth.tar' --exclude='*.safetensors' -C "$RUNS" .
    if [ "${COPY_SUMMARIES:-0}" = 1 ]; then
        local summary
        for summary in "$RUNS"/*/summary.csv; do
            [ -f "$summary" ] || continue
            mkdir -p "$OUT/$(basename "$(dirname "$summary")")"
            cp "$summary" "$OUT/$(basename "$(dirname "$summary")")/"
        done
    fi
}

run_concurrent() {
    (( $# > 0 )) || { echo "usage: run_concurrent.sh \"NAME=CONFIG [OPTION ...]\" ..."; exit 2; }
    : "${DATA:?set DATA to the dataset folder}"
    RUNS=${RUNS:-/tmp/runs}
    OUT=${OUT:-$PWD/.deviceout}
    DEADLINE=${DEADLINE:-480}
    STOP=${STOP:-0}
    mkdir -p "$OUT" "$RUNS"
    export PYTHONUNBUFFERED=1
    setup_device
    extract_data
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$RUNS/gpu.txt"
    fi
    run_jobs "$@"
    (( STOP > 0 )) && measure_throughput "$@"
    if [ -n "${REPORT:-}" ]; then
        RUNS=$RUNS OUT=$OUT bash -c "$REPORT"
    fi
    pack_runs
    echo "total $(elapsed) s"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    cd "$(dirname "$0")/.." || exit 1
    run_concurrent "$@"
fi
