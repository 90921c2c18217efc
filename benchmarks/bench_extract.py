"""Feature extraction: JPEG-folder throughput against the model's pure forward, and k-NN accuracy.

For each model and each --resize-on (cpu: timm's PIL transform in the loader; device: the loader
only decodes), at batch B, dtype and image size (default: the model's cfg, 224 px):
    forward   FeatureExtractor.forward on one resident random batch (B, 3, H, W): the ceiling,
              median of do_bench (CUDA events)
    host      the same from a pinned uint8 batch on the host: + copy to the GPU + normalisation
    loader    the DataLoader alone over the JPEGs (decode, and with --resize-on cpu resize + crop, to
              uint8, W workers)
    extract   extract_to_file over the train split repeated until >= --min-images images:
              JPEG folder -> .safetensors, wall clock including worker start and the final write,
              after a warm-up extraction of 4.5 batches (Triton compiles, CUDA-graph captures); a run
              pays ~0.5 s before its first batch is written (H200, 8 loaders), so size --min-images
              for runs of 30 s or more when the throughput is what you measure
    ratio     extract / forward (issue 6's target: >= 0.9)
    knn       embeddings of train and val (pretrained-cfg preprocessing, center crop), cosine
              k-NN with k = 20, T = 0.07 (DINO): top-1 / top-5; the weights are a seeded random
              init unless --checkpoint is given
With --cuda-graphs every extractor replays CUDA graphs (FeatureExtractor(cuda_graphs=True)): forward,
host, extract and knn alike; each JSON case line records "cuda_graphs".
Data: an ImageFolder root with train/ and val/ (e.g. Imagewoof-128 from ../shared/datasets).

    python benchmarks/bench_extract.py --data /tmp/imagewoof2-128 [--models hydra_vit_tiny ...]
        [--checkpoint CKPT [--ema]] [--model-kwargs k=v ...] [--resize-on cpu device] [--cuda-graphs] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from timm.utils import ParseKwargs
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import emit, env_header, time_ms  # noqa: E402

from hydra_vision.features import (  # noqa: E402
    FeatureExtractor, ImageList, extract_to_file, knn_scores, list_images, read_features, topk_accuracy,
)
from hydra_vision.features.loading import ImageDataset, collate_images  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def forward_ips(extractor: FeatureExtractor, batch: int) -> float:
    """Images/s of extractor.forward on a resident batch (random data, not zeros)."""
    x = torch.randn(batch, *extractor.data_config["input_size"], device=extractor.device).to(extractor.dtype)
    extractor.forward(x)
    if extractor.device.type == "cuda":
        return batch / time_ms(lambda: extractor.forward(x), warmup_ms=500, rep_ms=3000)["ms"] * 1e3
    start = time.perf_counter()
    extractor.forward(x)
    return batch / (time.perf_counter() - start)


def host_batch_ips(extractor: FeatureExtractor, batch: int) -> float:
    """Images/s of extractor(pinned uint8 batch): host-to-device copy + normalisation + forward."""
    x = torch.randint(0, 256, (batch, *extractor.data_config["input_size"]), dtype=torch.uint8).pin_memory()
    extractor(x)
    return batch / time_ms(lambda: extractor(x), warmup_ms=500, rep_ms=3000)["ms"] * 1e3


def loader_ips(extractor: FeatureExtractor, images: ImageList, batch: int, workers: int) -> float:
    """Images/s of decoding alone, with the same dataset, collate and pinning as extract_to_file."""
    loader = DataLoader(ImageDataset(images.paths, extractor.transform), batch_size=batch, num_workers=workers,
                        collate_fn=collate_images, pin_memory=extractor.device.type == "cuda")
    start = time.perf_counter()
    count = sum(len(b.indices) for b in loader)
    return count / (time.perf_counter() - start)


def warm_up(extractor: FeatureExtractor, images: ImageList, out: Path, batch: int, workers: int) -> None:
    """An extract_to_file run over the first four batches and a partial one, so that Triton's compilations
    and the CUDA-graph captures of the full batch happen before the timed runs (as the forward's warm-up)."""
    count = min(len(images), 4 * batch + batch // 2)
    extract_to_file(extractor, ImageList(images.paths[:count], images.labels[:count], images.classes), out,
                    batch_size=batch, workers=workers, progress=False)


def extract_ips(extractor: FeatureExtractor, images: ImageList, out: Path, batch: int, workers: int) -> float:
    """Images/s of a whole extract_to_file run (JPEGs -> feature file)."""
    _sync()
    start = time.perf_counter()
    result = extract_to_file(extractor, images, out, batch_size=batch, workers=workers, progress=False)
    _sync()
    return result.num_images / (time.perf_counter() - start)


def knn_accuracy(extractor: FeatureExtractor, data: Path, tmp: Path, batch: int, workers: int) -> dict:
    """k-NN (k=20, T=0.07) top-1/top-5 of val against train embeddings, and the train extraction img/s."""
    files = {}
    for split in ("train", "val"):
        files[split] = tmp / f"{split}.safetensors"
        ips = extract_ips(extractor, list_images(data / split), files[split], batch, workers)
        files[f"{split}_ips"] = ips
    (train, train_m), (val, val_m) = (read_features(files[s]) for s in ("train", "val"))
    scores = knn_scores(train["embeddings"].to(extractor.device), torch.tensor(train_m["labels"]),
                        val["embeddings"].to(extractor.device), len(train_m["classes"]), k=20, temperature=0.07)
    accuracy = topk_accuracy(scores, torch.tensor(val_m["labels"]))
    return {"knn_top1": round(accuracy[1], 2), "knn_top5": round(accuracy[5], 2), "train": len(train_m["paths"]),
            "val": len(val_m["paths"]), "classes": len(train_m["classes"]),
            "train_extract_ips": round(files["train_ips"], 1), "val_extract_ips": round(files["val_ips"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder root with train/ and val/")
    parser.add_argument("--models", nargs="+", default=["hydra_vit_tiny", "hydra_vit_base"])
    parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs)
    parser.add_argument("--checkpoint", help="weights for every model in --models (else a seeded random init)")
    parser.add_argument("--ema", action="store_true")
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--min-images", type=int, default=40000, help="images per throughput run")
    parser.add_argument("--resize-on", nargs="+", choices=("cpu", "device"), default=["cpu", "device"])
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="extractors replay their forward as CUDA graphs (see the module docstring)")
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    stream = open(args.out, "a") if args.out else None
    emit({**env_header(), "bench": "extract", "batch": args.batch_size, "workers": args.workers,
          "dtype": args.dtype, "data": str(args.data)}, stream)

    train = list_images(args.data / "train")
    repeat = -(-args.min_images // len(train))
    repeated = ImageList(train.paths * repeat, train.labels * repeat, train.classes)
    records = []
    for name, resize_on in ((name, where) for name in args.models for where in args.resize_on):
        torch.manual_seed(0)
        extractor = FeatureExtractor(name, checkpoint=args.checkpoint, ema=args.ema, img_size=args.img_size,
                                     device=args.device, dtype=DTYPES[args.dtype], model_kwargs=args.model_kwargs,
                                     resize_on=resize_on, cuda_graphs=args.cuda_graphs)
        record = {"kind": "case", "model": name, "resize_on": resize_on, "cuda_graphs": args.cuda_graphs,
                  "input_size": list(extractor.data_config["input_size"]), "checkpoint": args.checkpoint,
                  "ema": args.ema}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            record["forward_ips"] = round(forward_ips(extractor, args.batch_size), 1)
            if extractor.device.type == "cuda":
                record["host_batch_ips"] = round(host_batch_ips(extractor, args.batch_size), 1)
            record["loader_ips"] = round(loader_ips(extractor, repeated, args.batch_size, args.workers), 1)
            warm_up(extractor, repeated, tmp / "warm_up.safetensors", args.batch_size, args.workers)
            record["extract_ips"] = round(
                extract_ips(extractor, repeated, tmp / "bench.safetensors", args.batch_size, args.workers), 1)
            record["images"] = len(repeated)
            record["ratio"] = round(record["extract_ips"] / record["forward_ips"], 3)
            if not args.skip_knn:
                record.update(knn_accuracy(extractor, args.data, tmp, args.batch_size, args.workers))
        emit(record, stream)
        records.append(record)
        del extractor
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    columns = " ".join(f"{c:>9}" for c in ("forward", "host", "loader", "extract"))
    print(f"{'model':<16} {'resize':>6} {'size':>5} {columns} {'ratio':>6} {'knn@1':>6} {'knn@5':>6}")
    for r in records:
        print(f"{r['model']:<16} {r['resize_on']:>6} {r['input_size'][-1]:>5} {r['forward_ips']:>9.0f} "
              f"{r.get('host_batch_ips', float('nan')):>9.0f} {r['loader_ips']:>9.0f} "
              f"{r['extract_ips']:>9.0f} {r['ratio']:>6.3f} {r.get('knn_top1', float('nan')):>6.2f} "
              f"{r.get('knn_top5', float('nan')):>6.2f}")


if __name__ == "__main__":
    main()
