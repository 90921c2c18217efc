#!/usr/bin/env bash
# Session 50, call A (.whl and .ab carried; .ab = main packed): main's GPU tests (gpu_check.sh's list, the
# L = 65,536 case included), eager hydra_vit_base and ViT-B at 224 px with the 60 top kernels (host ms too), then
# the mix against one causal scan and against SDPA's flash and cuDNN backends, forward+backward.
set -uo pipefail
. benchmarks/run_concurrent.sh
start_device_call s50_a
packed_gpu_tests main 280 tests/kernels/gpu tests/kernels/test_quasiseparable_states.py \
  tests/layers/test_fused_layer.py tests/features/test_device_resize.py tests/features/test_cuda_graphs.py \
  "tests/models/test_selective_recompute.py::test_on_cuda_under_autocast_the_layernorm_copy_is_dropped_and_gradients_are_exact" \
  -v --durations=10
in_packed_tree main timeout 120 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
  --img-sizes 224 --compile off --quick --kernel-times 60 --out "$OUT/eager.jsonl" >"$OUT/eager.log" 2>&1
grep '"case"' "$OUT/eager.jsonl" | cut -c1-300
archive
in_packed_tree main timeout 100 python3 benchmarks/bench_mixer.py --cases triton causal sdpa sdpa_cudnn \
  --modes fwdbwd --lengths 197 1025 4097 --out "$OUT/mixer.jsonl" >"$OUT/mixer.log" 2>&1
in_packed_tree main python3 benchmarks/bench_mixer.py --table "$OUT/mixer.jsonl"
end_archived_call
