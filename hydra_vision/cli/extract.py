"""Extract image embeddings and feature maps from a folder, file list or glob into a feature file."""
from __future__ import annotations

import argparse
import os

import torch
from timm.utils import ParseKwargs

from hydra_vision.features import FeatureExtractor, extract_to_file, list_images, save_pca_grid
from hydra_vision.features.loading import open_rgb
from hydra_vision.features.store import manifest_path

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="image folder (recursive; class subfolders give labels), "
                                      "a .txt/.lst file list (path[<TAB>class] per line), or a quoted glob")
    parser.add_argument("--out", required=True, help="feature file: .safetensors (any outputs) or .npy (one output); "
                                                     "the manifest goes to <stem>.manifest.json")
    parser.add_argument("--model", required=True, help="timm model name, e.g. hydra_vit_base")
    parser.add_argument("--checkpoint", help="weights: a training checkpoint, a timm checkpoint or .safetensors")
    parser.add_argument("--ema", action="store_true", help="load the checkpoint's EMA weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights (what a run without "
                                                            "--checkpoint extracts; keeps reruns identical)")
    parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs,
                        help="extra timm.create_model arguments, key=value")
    parser.add_argument("--pool", help="global pooling for the embeddings (e.g. avg, token; default: the model's), "
                                       "or 'none' for no embeddings")
    parser.add_argument("--layers", type=int, nargs="+", default=[],
                        help="also save the outputs of these blocks (negative counts from the end)")
    parser.add_argument("--layer-format", choices=("NCHW", "NLC"), default="NCHW", help="layout of block outputs")
    parser.add_argument("--prefix-tokens", action="store_true", help="keep class/register tokens in block outputs")
    parser.add_argument("--layer-norm", action="store_true", help="apply the model's final norm to block outputs")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--img-size", type=int, help="input size (default: the model's)")
    parser.add_argument("--resize-on", choices=("cpu", "device"), default="cpu",
                        help="where images are resized: 'cpu' (timm's PIL transform in the loader) or 'device' "
                             "(the loader only decodes; faster when decoding bounds the run, pixels within a few "
                             "levels of PIL's)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="replay the forward as a CUDA graph per batch shape: removes the per-batch host "
                             "overhead (Python, kernel launches) that bounds small models; CUDA only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="image decoding processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), help="compute and output dtype (default: bf16 on CUDA, "
                                                               "fp32 otherwise; .npy stores bf16 as fp32)")
    parser.add_argument("--no-labels", action="store_true", help="ignore class subfolders")
    parser.add_argument("--shard-size", type=int, default=4096, help="images per resumable shard")
    parser.add_argument("--keep-shards", action="store_true", help="keep <stem>.shards/ after finishing")
    parser.add_argument("--visualize", type=int, nargs="?", const=8, default=0, metavar="N",
                        help="write <stem>.pca.png: PCA of the last block's patch features of the first N images")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.workers < 0:
        raise ValueError(f"need --batch-size >= 1 and --workers >= 0, got {args.batch_size} and {args.workers}")
    images = list_images(args.input, labels=not args.no_labels)
    dtype = args.dtype or ("bf16" if torch.device(args.device).type == "cuda" else "fp32")
    embeddings = (args.pool or "").lower() != "none"
    torch.manual_seed(args.seed)
    extractor = FeatureExtractor(
        args.model,
        checkpoint=args.checkpoint,
        ema=args.ema,
        pool=args.pool if embeddings else None,
        embeddings=embeddings,
        layers=args.layers,
        output_fmt=args.layer_format,
        prefix_tokens=args.prefix_tokens,
        layer_norm=args.layer_norm,
        normalize=args.normalize,
        img_size=args.img_size,
        device=args.device,
        dtype=DTYPES[dtype],
        model_kwargs=args.model_kwargs,
        resize_on=args.resize_on,
        cuda_graphs=args.cuda_graphs,
    )
    settings = dict(
        model=args.model, model_kwargs=args.model_kwargs, seed=args.seed, ema=args.ema, pool=args.pool, dtype=dtype,
        checkpoint=os.path.abspath(args.checkpoint) if args.checkpoint else None,
        layers=args.layers, layer_format=args.layer_format, prefix_tokens=args.prefix_tokens,
        layer_norm=args.layer_norm, normalize=args.normalize, data_config=extractor.data_config,
        resize_on=args.resize_on,
    )
    result = extract_to_file(extractor, images, args.out, batch_size=args.batch_size, workers=args.workers,
                             shard_size=args.shard_size, settings=settings, keep_shards=args.keep_shards,
                             progress=not args.quiet)
    print(f"wrote {result.num_images} rows of {', '.join(extractor.output_names)} to {args.out} "
          f"(manifest: {manifest_path(args.out)})")
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable images (listed in the manifest):")
        for path, error in result.skipped[:10]:
            print(f"  {path}: {error}")
    if args.visualize:
        skipped = {path for path, _ in result.skipped}
        chosen = [p for p in images.paths if p not in skipped][:args.visualize]
        png = os.path.splitext(args.out)[0] + ".pca.png"
        save_pca_grid(extractor, [open_rgb(p) for p in chosen], png)
        print(f"wrote {png}")
    return 0
