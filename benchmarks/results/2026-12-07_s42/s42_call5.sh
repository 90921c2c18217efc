#!/usr/bin/env bash
# Session 42 call 5, on main with the register caps (2568a74, packed in .ab/main): the models table (hydra_vit_base
# and vit_base_patch16_224 at 224-2,048 px, training and inference, eager, --quick), then a second probe of register
# caps (autotune_timings.py --configs .ab/probe/caps2.json, a copy of caps_probe2.json, at 128 x 197 and 6 x 4,097
# tokens). Carry .whl and .ab.
# (Written after the call with run_concurrent.sh's packed_models_table, which runs the same commands.)
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s42_call5
packed_models_table main 300
cd .ab/main
export PYTHONPATH=$PWD:/tmp/site
timeout 150 python3 benchmarks/autotune_timings.py --lengths 197 4097 --configs "$(cat ../probe/caps2.json)" \
  --out $OUT/caps2.jsonl > $OUT/caps2.log 2>&1
end_archived_call
