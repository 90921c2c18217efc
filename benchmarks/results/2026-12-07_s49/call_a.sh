#!/usr/bin/env bash
# Session 49, call A (.whl and .ab carried): session 48's call C (layer_timer.py with the compile-worker pool released
# after the warm-up), then bench_models.py's compiled training step (default mode; it now releases the pool after the
# warm-up) for hydra_vit_base and ViT-B at 224 px, one process each.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s49_a
here=$PWD/benchmarks/results/2026-12-07_s48
RELEASE=1 in_packed_tree main timeout 200 python3 "$here/layer_timer.py" >"$OUT/layer_timer_release.log" 2>&1
grep '^{' "$OUT/layer_timer_release.log" | cut -c1-160
archive
bench main compiled_base hydra_vit_base 150 --img-sizes 224 --compile on
bench main compiled_vitb vit_base_patch16_224 100 --img-sizes 224 --compile on
end_archived_call
