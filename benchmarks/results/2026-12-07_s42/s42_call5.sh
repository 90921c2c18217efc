#!/usr/bin/env bash
# Session 42 call 5, on main with the register caps (2568a74, packed in .ab/main): the models table (hydra_vit_base
# and vit_base_patch16_224 at 224-2,048 px, training and inference, eager, --quick), then a second probe of register
# caps (autotune_timings.py --configs .ab/probe/caps2.json, a copy of caps_probe2.json, at 128 x 197 and 6 x 4,097
# tokens). Carry .whl and .ab.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s42_call5
cd .ab/main
export PYTHONPATH=$ROOT/.ab/main:/tmp/site
timeout 300 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 --compile off --quick \
  --kernel-times 8 --out $OUT/models.jsonl > $OUT/models.log 2>&1
python3 benchmarks/bench_models.py --table $OUT/models.jsonl; archive
timeout 150 python3 benchmarks/autotune_timings.py --lengths 197 4097 --configs "$(cat ../probe/caps2.json)" \
  --out $OUT/caps2.jsonl > $OUT/caps2.log 2>&1
end_archived_call
