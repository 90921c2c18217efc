#!/usr/bin/env bash
# Session 42 calls 2 and 3, each one command line passed to the device tool on main's packed tree (9dfcfa3 in
# .ab/main), here one function per call. Carry .whl and .ab (call 3 also .ab/probe/caps.json = caps_probe1.json).
set -uo pipefail
. benchmarks/run_concurrent.sh

call2() {  # selective recompute at 512-2,048 px (53bc2cf included), then the mixer alone against its baselines
  start_device_call s42_call2
  cd .ab/main; export PYTHONPATH=$PWD:/tmp/site
  for s in 512 1024 2048; do
    timeout 100 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes $s --modes train --compile off \
      --quick --model-kwargs selective_recompute=True --out $OUT/recompute_$s.jsonl > $OUT/recompute_$s.log 2>&1
  done
  archive
  timeout 300 python3 benchmarks/bench_mixer.py --cases triton two_pass causal sdpa --modes fwdbwd \
    --out $OUT/mixer.jsonl > $OUT/mixer.log 2>&1
  end_archived_call
}

call3() {  # register caps for the forward, dx and bc kernels beside their fields, at 128 x 197 and 6 x 4,097 tokens
  start_device_call s42_call3
  cd .ab/main; export PYTHONPATH=$PWD:/tmp/site
  timeout 420 python3 benchmarks/autotune_timings.py --lengths 197 4097 --configs "$(cat ../probe/caps.json)" \
    --out $OUT/caps.jsonl > $OUT/caps.log 2>&1
  end_archived_call
}
