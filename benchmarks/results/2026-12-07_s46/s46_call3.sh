#!/usr/bin/env bash
# Session 46, call 3 (.ab and .whl as in call 1). Call 1: with one graph (main), the compiled 224 px step of
# hydra_vit_base still takes 107.7 ms a step for 70.6 ms of GPU work, while ViT-B's is GPU-bound (40.6 / 40.7).
# 1: where the host time goes in main's compiled step (cProfile by own time, torch.profiler by host time, the
# synchronising CUDA calls); 2: the eager step on the same machine (wall against GPU time); 3: main's GPU tests of
# the files session 45 changed for GPU runs, failures listed (the branch's run in call 2 was cut by its timeout);
# 4: the same compiled step under CUDA graphs (reduce-overhead), where the host's share is gone.
set -uo pipefail
. benchmarks/run_concurrent.sh
. benchmarks/results/2026-12-07_s45/s45_steps.sh
start_device_call s46_call3
bench main host_compiled hydra_vit_base 150 --img-sizes 224 --compile on --kernel-times 12 --python-profile \
  --sync-debug --profile
bench main graphs_base hydra_vit_base 100 --img-sizes 224 --compile reduce-overhead --kernel-times 12
bench main host_eager hydra_vit_base 80 --img-sizes 224 --compile off --kernel-times 12 --python-profile
packed_gpu_tests main 120 -rf tests/models/test_fused_residual.py tests/layers/test_matmul_input_norm.py \
  tests/kernels/test_layernorm_triton.py tests/kernels/test_backend.py tests/models/test_export.py
end_archived_call
