#!/usr/bin/env bash
# Session 35 call 4 (last of the budget): (1) which pair-kernel config faults at 2 x 197 tokens (P 32, N 16, G 4),
# each in its own process with CUDA_LAUNCH_BLOCKING=1, and config 0 with the tail launch off; (2) exp-residual's
# LayerNorm GPU tests; (3) main vs exp-residual, one 224 px step each.
set -uo pipefail
ROOT=$PWD
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device >/dev/null 2>&1
export PYTHONPATH=/tmp/site
t() { (cd $ROOT/.ab/$1 && PYTHONPATH=$ROOT/.ab/$1:/tmp/site CUDA_LAUNCH_BLOCKING=1 timeout 70 python3 -m pytest -q -x \
   -p no:cacheprovider "tests/kernels/gpu/test_triton_gpu.py::test_every_autotune_config_is_exact[pairs-$2]" \
   > $OUT/$1_pairs_$2.txt 2>&1); }
t main 0 & t main 1 & t main 2 & t main 3 & t notail 0 & wait
for f in $OUT/*_pairs_*.txt; do echo "== $(basename $f): $(tail -1 $f)"; grep -o "triton_[a-z_]*\.py:[0-9]*: in [a-z_]*" $f | tail -3; done
(cd $ROOT/.ab/exp-residual && PYTHONPATH=$ROOT/.ab/exp-residual:/tmp/site timeout 60 python3 -m pytest -q \
   -p no:cacheprovider tests/kernels/gpu/test_shell_kernels_gpu.py > $OUT/residual_gpu.txt 2>&1; tail -2 $OUT/residual_gpu.txt)
mkdir -p $OUT/ab
OUT=$OUT/ab AB=models AB_ARGS="--kernel-times 30" timeout 150 bash benchmarks/ab_branches.sh run main exp-residual 2>&1 | tail -4
