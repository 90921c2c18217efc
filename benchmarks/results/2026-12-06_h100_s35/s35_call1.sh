#!/usr/bin/env bash
# Session 35 call 1: pre-change main (ddf4bc9) vs main (pair tail programs) vs exp-tailtiles, 224 px training step,
# two rounds each, with per-kernel GPU times.
set -uo pipefail
ROOT=$PWD
nvidia-smi --query-gpu=name,driver_version --format=csv > $OUT/gpu.txt
mkdir -p $OUT/ab
OUT=$OUT/ab AB=models AB_ARGS="--kernel-times 60" timeout 555 bash benchmarks/ab_branches.sh run \
    main exp-tailtiles exp-residual ddf4bc9 main exp-tailtiles exp-residual 2>&1 | tail -40
for f in $OUT/ab/ab_models_*.jsonl; do
python3 - $f <<'PY'
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("kind") == "case":
        k = dict(d["kernels_us"])
        pick = {n: round(v / 1000, 3) for n, v in k.items() if "chunk" in n or "mix" in n}
        print(sys.argv[1].split("/")[-1], d["gpu_ms"], "gpu_ms", d["img_s"], "img/s", pick)
PY
done
