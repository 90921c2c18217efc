#!/usr/bin/env bash
# Session 47, call 1 (carry .whl and .ab; .ab from `ab_branches.sh pack main` at a050414): session 46's two test
# fixes on the GPU; hydra_vit_base and ViT-B under CUDA graphs at 224 px (reserved_gib sees the graph pool; ViT-B
# under CUDA graphs is the fair baseline for our CUDA-graph step); host_probe.py (why the default-mode compiled step
# is host-bound), default settings.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s47_call1
packed_gpu_tests main 100 -rf tests/models/test_fused_residual.py tests/models/test_export.py
bench main graphs_base hydra_vit_base 100 --img-sizes 224 --compile reduce-overhead
bench main graphs_vitb vit_base_patch16_224 100 --img-sizes 224 --compile reduce-overhead
probe=$PWD/benchmarks/results/2026-12-07_s46/host_probe.py
in_packed_tree main timeout 190 python3 "$probe" >"$OUT/host_probe.log" 2>&1
grep -E '^\{|THREAD' "$OUT/host_probe.log" | cut -c1-400
end_archived_call
