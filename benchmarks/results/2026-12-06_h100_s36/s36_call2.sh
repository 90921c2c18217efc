#!/usr/bin/env bash
# Session 36 call 2: hydra_vit_base's 224 px step for main and the conv branches (two interleaved rounds,
# kernel times), then the models table (hydra_vit_base vs vit_base_patch16_224, all sizes, eager, --quick) on main.
set -uo pipefail
ROOT=$PWD
FINAL=$OUT
mkdir -p $FINAL/w
export OUT=$FINAL/w
. benchmarks/run_concurrent.sh
RUNS=$OUT setup_device
BRANCHES=${BRANCHES:-main exp-conv-ahead exp-conv-ahead-fwd}
for r in 1 2; do
  for b in $BRANCHES; do
    (cd $ROOT/.ab/$b && PYTHONPATH=$ROOT/.ab/$b:/tmp/site timeout 150 python3 benchmarks/bench_models.py \
       --models hydra_vit_base --img-sizes 224 --modes train --compile off --quick --kernel-times 60 \
       --out $OUT/ab_models_${b}_r$r.jsonl > $OUT/ab_models_${b}_r$r.log 2>&1)
    echo "== $b r$r"; grep '"case"' $OUT/ab_models_${b}_r$r.jsonl | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r['model'], r['img_s'], 'img/s', r.get('gpu_ms'), 'gpu_ms', r['peak_gib'], 'GiB')"
  done
done
if [ -z "${SKIP_TABLE:-}" ]; then
  PYTHONPATH=$ROOT:/tmp/site timeout 260 python3 benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224 \
     --compile off --quick --out $OUT/models.jsonl > $OUT/models.log 2>&1
  python3 benchmarks/bench_models.py --table $OUT/models.jsonl
fi
cd $FINAL && tar czf s36_call2.tgz w && rm -rf w
