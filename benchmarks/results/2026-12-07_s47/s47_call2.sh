#!/usr/bin/env bash
# Session 47, call 2 (never ran: no machine, then too little budget; call 3 is its first step): gc_probe.py
# (the garbage collector's share of the step, eager and compiled, one process); ViT-B and hydra_vit_base under
# CUDA graphs at 224 px (reserved_gib includes the graphs' pool); session 46's two test fixes on the GPU (call 1's
# run hit its 90 s limit after 13 passes).
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s47_call2
in_packed_tree main timeout 170 python3 "$PWD/benchmarks/results/2026-12-07_s47/gc_probe.py" >"$OUT/gc_probe.log" 2>&1
grep '^{' "$OUT/gc_probe.log"
archive
bench main graphs_vitb vit_base_patch16_224 90 --img-sizes 224 --compile reduce-overhead
bench main graphs_base hydra_vit_base 100 --img-sizes 224 --compile reduce-overhead
packed_gpu_tests main 150 -rf tests/models/test_fused_residual.py tests/models/test_export.py
end_archived_call
