#!/usr/bin/env bash
# Session 41 call 1 (one call for a short budget): on main's packed tree (d2fe094), the GPU tests nearest the
# changes merged untested in session 39 (the fused layer, the real-size shell kernels, selective recompute under
# CUDA autocast); the models table (hydra_vit_base vs vit_base_patch16_224 at 224-2,048 px, training and
# inference, eager, --quick); hydra_vit_base's 224 px training step with selective_recompute=True. The archive is
# rewritten after each step (start_archived_call), so a cut-off call keeps what ran.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_device_call s41_call1
cd .ab/main
export PYTHONPATH=$ROOT/.ab/main:/tmp/site
timeout 100 python3 -m pytest tests/layers/test_fused_layer.py tests/kernels/gpu/test_shell_kernels_gpu.py \
  tests/models/test_selective_recompute.py::test_on_cuda_under_autocast_the_layernorm_copy_is_dropped_and_gradients_are_exact \
  -v -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1; tail -3 $OUT/gpu_tests.log; archive
timeout 300 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 --compile off --quick \
  --kernel-times 8 --out $OUT/models.jsonl > $OUT/models.log 2>&1
python3 benchmarks/bench_models.py --table $OUT/models.jsonl; archive
timeout 60 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 --modes train --compile off \
  --quick --kernel-times 60 --model-kwargs selective_recompute=True --out $OUT/recompute.jsonl > $OUT/recompute.log 2>&1
python3 benchmarks/bench_models.py --table $OUT/recompute.jsonl
end_archived_call
