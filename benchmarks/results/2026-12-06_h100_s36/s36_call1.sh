#!/usr/bin/env bash
# Session 36 call 1: main's GPU tests (gpu_check.sh tests); the conv kernels alone (bench_shell.py) for main and the
# three prefetch-depth branches, two interleaved rounds; exp-conv-ahead with 128-token segments.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
TEST_LIMIT=240 bash benchmarks/gpu_check.sh tests 2>&1 | tail -6
for r in 1 2; do
  for b in main exp-conv-ahead2 exp-conv-ahead exp-conv-ahead-fwd; do
    (cd $ROOT/.ab/$b && PYTHONPATH=$ROOT/.ab/$b:/tmp/site timeout 120 python3 benchmarks/bench_shell.py --ops conv \
       --out $OUT/shell_${b}_r$r.jsonl > /dev/null 2>&1)
    echo "== $b r$r"; grep '"case"' $OUT/shell_${b}_r$r.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['batch'], r['L'], r['mode'], r['ms'], r['kernels_us'], r.get('configs'))"
  done
done
for seg in 128 256; do
  (cd $ROOT/.ab/exp-conv-ahead && PYTHONPATH=$ROOT/.ab/exp-conv-ahead:/tmp/site timeout 120 python3 benchmarks/bench_shell.py \
     --ops conv --segment $seg --out $OUT/shell_exp-conv-ahead_seg$seg.jsonl > /dev/null 2>&1)
  echo "== exp-conv-ahead seg $seg"; grep '"case"' $OUT/shell_exp-conv-ahead_seg$seg.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['batch'], r['L'], r['mode'], r['ms'], r['kernels_us'])"
done
(cd $ROOT/.ab/exp-patch-gemm && PYTHONPATH=$ROOT/.ab/exp-patch-gemm:/tmp/site timeout 60 python3 $ROOT/.ab/patch_bench.py | tee $OUT/patch_bench.jsonl)
cd $FINAL && tar czf s36_call1.tgz w && rm -rf w
