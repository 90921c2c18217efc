"""List the hydra_vit_* variants with their parameters and GFLOPs per image."""
from __future__ import annotations

import argparse
import json

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from hydra_vision.kernels import quasiseparable_mix
from hydra_vision.layers import Hydra

__all__ = ["model_flops", "scan_flops"]


def model_flops(model: torch.nn.Module, img_size: tuple[int, int]) -> int:
    """FLOPs (2 per multiply-add of every matmul, einsum and conv) of one image through `model`.

    Create the model on the meta device to count from shapes alone (nothing is computed; the
    kernels take the reference path there). Elementwise ops (norms, activations, decays) are
    not counted, as in fvcore/timm.
    """
    x = torch.empty(1, model.in_chans, *img_size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def scan_flops(mixer: Hydra, seq_len: int) -> int:
    """FLOPs of one call of the quasiseparable mix (reference path) inside `mixer` for one sequence.

    Both directions, with dense Q x Q blocks (Q = min(chunk_size, L); "auto" by length) inside each chunk and
    the inter-chunk states: the matmul work the chunked algorithm does, masked halves included.
    """
    H, P, G, N, L = mixer.nheads, mixer.headdim, mixer.ngroups, mixer.d_state, seq_len

    def t(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device="meta")

    with FlopCounterMode(display=False) as counter:
        quasiseparable_mix(
            t(1, L, H, P), t(1, L, H), t(1, L, H), t(H), t(1, L, G, N), t(1, L, G, N), t(1, L, G, N), t(1, L, G, N),
            t(1, L, H), dt_bias=t(H), dt_softplus=True, chunk_size=mixer.chunk_size, backend="reference",
        )
    return counter.get_total_flops()


def describe(name: str, img_size: int) -> dict:
    """Params and FLOPs of the registered model `name` at img_size x img_size (default config otherwise)."""
    model = timm.create_model(name, img_size=img_size, device="meta")
    seq_len = model.patch_embed.num_patches + model.num_prefix_tokens
    mixers = [m for m in model.modules() if isinstance(m, Hydra)]
    scan = sum(scan_flops(m, seq_len) for m in mixers)
    return {
        "model": name,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "img_size": img_size,
        "tokens": seq_len,
        "gflops": model_flops(model, (img_size, img_size)) / 1e9,
        "scan_gflops": scan / 1e9,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default="hydra*", help="timm.list_models pattern (default: hydra*)")
    parser.add_argument("--img-size", type=int, default=224, help="square image size for the FLOP count")
    parser.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")


def run(args: argparse.Namespace) -> int:
    names = timm.list_models(args.filter)
    if not names:
        raise ValueError(f"no registered model matches {args.filter!r} (hydra models: {timm.list_models('hydra*')})")
    rows = [describe(name, args.img_size) for name in names]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'model':<18} {'params (M)':>10} {'GFLOPs':>8} {'scan GFLOPs':>12}   at {args.img_size}x{args.img_size}")
    for row in rows:
        print(f"{row['model']:<18} {row['params_m']:>10.2f} {row['gflops']:>8.2f} {row['scan_gflops']:>12.2f}")
    print("GFLOPs: 2 x multiply-adds of matmuls, einsums and convs (torch.utils.flop_counter, reference path);"
          "\nscan: the quasiseparable mix's share (both directions, dense chunk blocks); elementwise ops not counted.")
    return 0
