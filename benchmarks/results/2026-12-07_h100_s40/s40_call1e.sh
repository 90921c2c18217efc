#!/usr/bin/env bash
# Session 40, the smallest useful call (~150 s of run; prepared, not run): on main's packed tree
# (2008903), the GPU tests nearest the changes merged untested in session 39 (the fused layer, the real-size shell
# kernels, selective recompute under CUDA autocast), then hydra_vit_base's 224 px training step with
# selective_recompute=True (speed, peak memory). The archive is rewritten after each step (start_archived_call).
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
start_archived_call s40_call1e
RUNS=$OUT setup_device
nvidia-smi --query-gpu=name,driver_version --format=csv > $OUT/gpu.txt
cd .ab/main
export PYTHONPATH=$ROOT/.ab/main:/tmp/site
timeout 90 python3 -m pytest tests/layers/test_fused_layer.py tests/kernels/gpu/test_shell_kernels_gpu.py \
  tests/models/test_selective_recompute.py::test_on_cuda_under_autocast_the_layernorm_copy_is_dropped_and_gradients_are_exact \
  -v -n 6 -p no:cacheprovider > $OUT/gpu_tests.log 2>&1; tail -3 $OUT/gpu_tests.log; archive
timeout 60 python3 benchmarks/bench_models.py --models hydra_vit_base --img-sizes 224 --modes train --compile off \
  --quick --kernel-times 60 --model-kwargs selective_recompute=True --out $OUT/recompute.jsonl > $OUT/recompute.log 2>&1
grep '"case"' $OUT/recompute.jsonl | cut -c1-400
end_archived_call
