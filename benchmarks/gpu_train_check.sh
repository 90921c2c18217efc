#!/usr/bin/env bash
# Training checks on the device machine; what comes back lands in $OUT.
#   throughput  per-recipe training step at 224 px, batch 128, bf16 (benchmarks/train_throughput.py)
#   imagewoof   ~280 updates of hydra_vit_tiny (128 px) with EMA (warmup) and --torchcompile, then
#               `hydra-vision validate` of the best checkpoint's EMA weights
#   ddp         the same recipe without compile on 1 GPU (batch 128) and through torchrun on 2 GPUs
#               (2 x 64, same global batch), then benchmarks/compare_runs.py on the two loss curves
# One H100 call:  benchmarks/gpu_train_check.sh throughput imagewoof
# One 2-GPU call: benchmarks/gpu_train_check.sh ddp
# Carry .whl (timm/einops wheels) and .data (imagewoof2-128.tar.gz).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.deviceout}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps=${*:-throughput imagewoof ddp}
status=0

# shellcheck source=run_concurrent.sh
. benchmarks/run_concurrent.sh  # setup_device, extract_data
RUNS=$OUT setup_device
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"

DATA=/tmp/imagewoof2-128
RUNS=/tmp/runs
if [[ " $steps " == *" imagewoof "* || " $steps " == *" ddp "* ]]; then
    ARCHIVES=.data/imagewoof2-128.tar.gz extract_data
fi
# hydra_vit_tiny's ImageNet recipe at Imagewoof's 128 px, shortened: 4 (or 3) epochs of 70 updates,
# lr 1e-3 at batch 128 with per-update warmup, EMA with timm's decay warmup (useful after a few hundred updates)
WOOF=(-c configs/hydra_vit_tiny.yaml --data-dir "$DATA" --img-size 128 --model-kwargs img_size=128
      --warmup-epochs 1 --sched-on-updates --lr 1e-3 --model-ema-decay 0.9998 --model-ema-warmup -j 14 --output "$RUNS"
      --log-interval 5 --checkpoint-hist 1)

if [[ " $steps " == *" throughput "* ]]; then
    timeout 200 python3 benchmarks/train_throughput.py --steps 15 --warmup 3 --out "$OUT/train_throughput.jsonl" 2>&1 | grep -v "^Current\|^ (\|^$"
fi
if [[ " $steps " == *" imagewoof "* ]]; then
    start=$(date +%s)
    timeout 290 python3 train_imagenet.py "${WOOF[@]}" --epochs 4 -b 128 --torchcompile --experiment woof_compile \
        >"$OUT/imagewoof_compile.log" 2>&1
    status=$?
    echo "imagewoof run: exit $status, $(( $(date +%s) - start )) s (includes torch.compile)"
    grep "^epoch\|run folder" "$OUT/imagewoof_compile.log"
    python3 -m hydra_vision.cli validate "$DATA" --checkpoint "$RUNS/woof_compile/model_best.pth.tar" --use-ema \
        -b 256 -j 14 --results-file "$RUNS/woof_compile/validate_ema.json" 2>/dev/null | tail -12
fi
if [[ " $steps " == *" ddp "* ]]; then
    start=$(date +%s)
    python3 train_imagenet.py "${WOOF[@]}" --epochs 3 -b 128 --experiment 1gpu >"$OUT/ddp_1gpu.log" 2>&1 || status=1
    echo "1 GPU: $(( $(date +%s) - start )) s"; start=$(date +%s)
    torchrun --standalone --nproc_per_node 2 train_imagenet.py "${WOOF[@]}" --epochs 3 -b 64 --experiment 2gpu \
        >"$OUT/ddp_2gpu.log" 2>&1 || status=1
    echo "2 GPUs: $(( $(date +%s) - start )) s"
    python3 benchmarks/compare_runs.py "$RUNS/1gpu" "$RUNS/2gpu" --labels 1gpu 2gpu --png "$OUT/loss_1gpu_vs_2gpu.png" \
        | tee "$OUT/compare_1gpu_2gpu.jsonl"
fi
tar -czf "$OUT/runs.tgz" --exclude='*.pth.tar' --exclude='*.safetensors' -C "$RUNS" . 2>/dev/null
exit "$status"
