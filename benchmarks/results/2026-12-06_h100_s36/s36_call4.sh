#!/usr/bin/env bash
# Session 36 call 4: the conv alone (bench_shell.py --ops conv) for main at 64 / 128 / 256-token backward
# segments and for exp-conv-fwd-ahead3; then hydra_vit_base's 224 px step (kernel times) for main, cand
# (patch GEMM + conv forward two rows ahead) and cand-seg256 (the same with 256-token segments), interleaved.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
shell() {  # tree name [options]
  local b=$1 name=$2; shift 2
  (cd $ROOT/.ab/$b && PYTHONPATH=$ROOT/.ab/$b:/tmp/site timeout 120 python3 benchmarks/bench_shell.py --ops conv "$@" \
     --out $OUT/shell_$name.jsonl > /dev/null 2>&1)
  echo "== $name"; grep '"case"' $OUT/shell_$name.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); k = {n[:24]: v for n, v in r['kernels_us'].items()}; print(r['batch'], r['L'], r['mode'], r['ms'], k)"
}
shell main main_seg64
shell main main_seg128 --segment 128
shell main main_seg256 --segment 256
shell exp-conv-fwd-ahead3 fwd3
models() {  # tree round
  (cd $ROOT/.ab/$1 && PYTHONPATH=$ROOT/.ab/$1:/tmp/site timeout 150 python3 benchmarks/bench_models.py \
     --models hydra_vit_base --img-sizes 224 --modes train --compile off --quick --kernel-times 60 \
     --out $OUT/ab_models_$1_r$2.jsonl > $OUT/ab_models_$1_r$2.log 2>&1)
  echo "== $1 r$2"; grep '"case"' $OUT/ab_models_$1_r$2.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['model'], r['img_s'], 'img/s', r.get('gpu_ms'), 'gpu_ms', r['peak_gib'], 'GiB')"
}
models main 1; models cand 1; models cand-seg256 1; models main 2; models cand 2; models cand-seg256 2
cd $FINAL && tar czf s36_call4.tgz w && rm -rf w
