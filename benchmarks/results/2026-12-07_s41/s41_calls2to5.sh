#!/usr/bin/env bash
# Session 41 calls 2-5 on the machine that call 1 started (warm, chained). Each call was one command line
# passed to the device tool; here the same commands are one function per call
# (start_device_call also records the GPU, which calls 2-5 did not). Carry .whl and .ab (main = d2fe094, f75723a).
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh

call2() {  # 53bc2cf's timing: the 224 px step with selective_recompute=True, main against f75723a, two rounds
  start_device_call s41_call2
  mkdir -p $OUT/rc && OUT=$OUT/rc AB=models AB_ARGS="--kernel-times 60 --model-kwargs selective_recompute=True" \
    timeout 240 bash benchmarks/ab_branches.sh run main f75723a main f75723a 2>&1 | tail -12
  end_archived_call
}

call3() {  # main's whole GPU test subset
  start_device_call s41_call3
  (cd .ab/main && WHEELS=$ROOT/.whl PYTHONPATH=$ROOT/.ab/main:/tmp/site TEST_LIMIT=200 timeout 250 \
    bash benchmarks/gpu_check.sh tests 2>&1 | tail -8)
  end_archived_call
}

start_run() {  # bench_models.py --cold-start at 1,024 px on the Triton cache /tmp/triton_cold_s41 -> $OUT/$1.jsonl
  (cd .ab/main && TRITON_CACHE_DIR=/tmp/triton_cold_s41 PYTHONPATH=$ROOT/.ab/main:/tmp/site timeout 130 python3 \
    benchmarks/bench_models.py --cold-start --models hydra_vit_base --img-sizes 1024 --modes train --compile off \
    --out $OUT/$1.jsonl > $OUT/$1.log 2>&1)
}

call4() {  # the cold start: an empty Triton cache
  start_device_call s41_call4
  rm -rf /tmp/triton_cold_s41; start_run cold_start; cut -c1-600 $OUT/cold_start.jsonl
  end_archived_call
}

call5() {  # a second process on the cache call 4 filled
  start_device_call s41_call5
  start_run warm_start; grep cold_start $OUT/warm_start.jsonl
  end_archived_call
}

"${1:?usage: s41_calls2to5.sh call2|call3|call4|call5}"
