"""Whole-model benchmark in the style of timm's benchmark.py: Hydra-ViT vs timm ViT, inference and training step.

For each model, image size N (model built with `timm.create_model(name, img_size=N)`; timm's ViT
uses SDPA, flash on the GPU), mode and compile setting, one resident random batch (B, 3, N, N):
    infer  model.eval(), no_grad forward
    train  model.train(), forward + cross-entropy + backward + AdamW step (fused on CUDA)
under bf16 autocast on CUDA (fp32 on CPU). Reported per case: median ms per step (triton do_bench
on CUDA, time.perf_counter on CPU), img/s = B / median, the peak memory of one step (weights,
optimizer state and input included; under CUDA graphs the graphs' private pool escapes it, so `reserved_gib`, what
the caching allocator holds after the case, is recorded too), on CUDA the GPU's busy time per step (`gpu_ms`: below the
median when the host sets the pace, as in eager steps of small batches), the host's time to issue one step
(`host_ms`: near the median when the host sets the pace) and MFU = FLOPs / time /
peak FLOP/s. FLOPs per image are counted once per model and size with FlopCounterMode on a meta
copy of the model (batch 1; the Hydra mix counted through its pure-PyTorch reference form); a
training step counts 3x the forward (backward = 2x forward, the usual MFU convention; the counter's
own conv backward count is not used since it overcounts grouped convolutions). Out-of-memory cases are recorded, not fatal.

    python benchmarks/bench_models.py [--models ...] [--img-sizes 224 512 1024 2048] [--batch-sizes ...]
        [--modes infer train] [--compile off on reduce-overhead] [--device cuda] [--model-kwargs depth=2] [--out FILE]
        [--quick] [--profile] [--python-profile]
    python benchmarks/bench_models.py --table FILE.jsonl   (markdown table of Hydra / ViT ratios, no GPU)
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import sys
import time

PROCESS_START = time.perf_counter()
from pathlib import Path
from typing import Callable

import timm
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import (  # noqa: E402
    cpu_time_ms, emit, env_header, gpu_busy_ms, host_ms, kernel_us, largest, peak_memory_gib, profile_table,
    python_profile_table, sync_report, time_ms,
)

import hydra_vision  # noqa: E402,F401  (registers hydra_vit_*)
from hydra_vision.training.compile_workers import release_compile_workers  # noqa: E402

PAIRS = (("hydra_vit_tiny", "deit_tiny_patch16_224"), ("hydra_vit_small", "deit_small_patch16_224"),
         ("hydra_vit_base", "vit_base_patch16_224"))
MODELS = tuple(name for pair in PAIRS for name in pair)
IMG_SIZES = (224, 512, 1024, 2048)
BATCH_SIZES = {224: 128, 512: 32, 1024: 8, 2048: 2}  # about 25-33k tokens per batch at patch 16
SPEED_TARGETS = {224: 0.85, 512: 0.9, 1024: 1.3, 2048: 3.0}  # issue 4: hydra_vit_base / vit_base img/s
H100_BF16_DENSE = 989e12
NUM_CLASSES = 1000
COMPILE_MODES = {"off": None, "on": "default", "reduce-overhead": "reduce-overhead"}  # --compile -> torch.compile mode
RECORDED_COMPILE = {"off": False, "on": True}  # the records' "compile" (other modes by name)
COMPILE_LABELS = {recorded: flag for flag, recorded in RECORDED_COMPILE.items()}


def parse_model_kwargs(items: list[str]) -> dict:
    """['depth=2', 'drop_path_rate=0.1'] -> {'depth': 2, 'drop_path_rate': 0.1} (literals, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-kwargs entries must be key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def forward_flops(model: torch.nn.Module, img_size: int) -> int:
    """FLOPs of one image's forward pass (2 x multiply-adds), counted on a meta copy of `model`."""
    meta = copy.deepcopy(model).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, img_size, img_size, device="meta"))
    return counter.get_total_flops()


def make_step(model: torch.nn.Module, mode: str, compile_mode: str | None, batch: int, img_size: int,
              device: torch.device) -> Callable[[], object]:
    """One inference forward or one training step (see the module docstring) on a resident batch;
    compile_mode: None (eager) or a torch.compile mode ('default', 'reduce-overhead': CUDA graphs)."""
    cuda = device.type == "cuda"
    inputs = torch.randn(batch, 3, img_size, img_size, device=device)
    targets = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    net = torch.compile(model, mode=compile_mode) if compile_mode else model

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    if mode == "infer":
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                return net(inputs)
        return step
    model.train()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05, **({"fused": True} if cuda else {}))

    def step():
        with autocast():
            loss = F.cross_entropy(net(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def measure(model: torch.nn.Module, mode: str, compile_mode: str | None, batch: int, img_size: int,
            device: torch.device, quick: bool, profile: bool = False, python_profile: bool = False,
            sync_debug: bool = False, kernel_times: int = 0) -> dict:
    """Median step time, img/s and peak memory of one case (with `profile`, also print the profiler tables
    by GPU time and by host time: a step that launches many small kernels is bound by the second; with
    `kernel_times`, also record that many kernels with the most GPU time per step, in us)."""
    step = make_step(model, mode, compile_mode, batch, img_size, device)
    for _ in range(2 if quick else 3):  # compile, autotune, allocator warm-up outside the timed region
        step()
    release_compile_workers()  # as the trainer does after its first update (their idle pool slows the host)
    title = f"{type(model).__name__} {mode} {img_size} px batch {batch}"
    if profile and device.type == "cuda":
        print(profile_table(step, title, steps=3, rows=30, sort_by=("self_cuda_time_total", "self_cpu_time_total")),
              flush=True)
    if python_profile and device.type == "cuda":
        print(python_profile_table(step, title, steps=5, rows=45), flush=True)
    if sync_debug and device.type == "cuda":
        print(sync_report(step, title), flush=True)
    if device.type != "cuda":
        stats = cpu_time_ms(step, warmup=1, reps=3 if quick else 10)
        return {**stats, "img_s": round(batch * 1000 / stats["ms"], 2), "peak_gib": None}
    # do_bench times about rep_ms / (one step's estimate) steps: with 100 ms a quick run timed one 80 ms step, whose
    # wall time moved with the host by up to 25% (RESULTS.md, session 32); 500 ms gives a median of several
    stats = time_ms(step, warmup_ms=25 if quick else 200, rep_ms=500 if quick else 1000)
    resident = torch.cuda.memory_allocated() / 2**30
    peak = round(resident + peak_memory_gib(step), 4)
    record = {**stats, "img_s": round(batch * 1000 / stats["ms"], 2), "peak_gib": peak,
              "reserved_gib": round(torch.cuda.memory_reserved() / 2**30, 4), "gpu_ms": gpu_busy_ms(step),
              "host_ms": host_ms(step)}
    if kernel_times:
        record["kernels_us"] = largest(kernel_us(step, steps=3), kernel_times)
    return record


def is_oom(error: Exception) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def batch_size(args: argparse.Namespace, i: int) -> int:
    """The batch of the i-th image size: --batch-sizes (one per size, or one for all), else BATCH_SIZES, else
    224 px's batch scaled to the same pixels per batch."""
    if args.batch_sizes:
        return args.batch_sizes[i if len(args.batch_sizes) > 1 else 0]
    img_size = args.img_sizes[i]
    return BATCH_SIZES.get(img_size, max(1, BATCH_SIZES[224] * 224**2 // img_size**2))


def create(name: str, img_size: int, model_kwargs: dict) -> torch.nn.Module:
    """timm.create_model at img_size with the benchmark's class count and the extra kwargs."""
    return timm.create_model(name, img_size=img_size, num_classes=NUM_CLASSES, **model_kwargs)


def cold_start(args: argparse.Namespace, model_kwargs: dict, device: torch.device) -> dict:
    """The first step of the first model, size and mode in this process: Triton's compile and autotune of
    every kernel the step runs (on an empty TRITON_CACHE_DIR), or their cache lookups."""
    img_size, name, mode = args.img_sizes[0], args.models[0], args.modes[0]
    batch = batch_size(args, 0)
    model = create(name, img_size, model_kwargs).to(device)
    step = make_step(model, mode, COMPILE_MODES[args.compile[0]], batch, img_size, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    step()
    sync()
    return {"kind": "cold_start", "model": name, "img_size": img_size, "batch": batch, "mode": mode,
            "compile": RECORDED_COMPILE.get(args.compile[0], args.compile[0]),
            "first_step_s": round(time.perf_counter() - start, 2),
            "process_s": round(time.perf_counter() - PROCESS_START, 2)}


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for but no CUDA device is available (use --device cpu for a smoke run)")
    # as in timm's benchmark.py and our trainer: cuDNN times its algorithms for the patch embedding's conv
    torch.backends.cudnn.benchmark = True
    model_kwargs = parse_model_kwargs(args.model_kwargs)
    if args.batch_sizes and len(args.batch_sizes) not in (1, len(args.img_sizes)):
        raise ValueError(f"--batch-sizes needs 1 value or one per image size ({len(args.img_sizes)}), "
                         f"got {len(args.batch_sizes)}")
    stream = args.out.open("a") if args.out else None
    emit({**env_header(), "bench": "models", "amp": "bf16" if device.type == "cuda" else "fp32",
          "peak_flops": args.peak_tflops * 1e12, "model_kwargs": model_kwargs}, stream)
    if args.cold_start:
        emit(cold_start(args, model_kwargs, device), stream)
        return
    for i, img_size in enumerate(args.img_sizes):
        batch = batch_size(args, i)
        for name in args.models:
            model = create(name, img_size, model_kwargs)
            flops_img = forward_flops(model, img_size)
            params_m = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
            for mode in args.modes:
                for compile_flag in args.compile:
                    record = {"kind": "case", "model": name, "img_size": img_size, "batch": batch, "mode": mode,
                              "compile": RECORDED_COMPILE.get(compile_flag, compile_flag), "params_m": params_m,
                              "flops_img": flops_img * (3 if mode == "train" else 1)}
                    case_model = copy.deepcopy(model).to(device)
                    try:
                        stats = measure(case_model, mode, COMPILE_MODES[compile_flag], batch, img_size, device,
                                        args.quick, args.profile, args.python_profile, args.sync_debug,
                                        args.kernel_times)
                        mfu = record["flops_img"] * batch / (stats["ms"] / 1000) / (args.peak_tflops * 1e12)
                        record.update(stats, status="ok", mfu=float(f"{mfu:.4g}"))
                    except Exception as e:  # one failing case (OOM, kernel error) must not hide the others
                        record.update(status="oom" if is_oom(e) else "error", error=f"{type(e).__name__}: {e}"[:300])
                    emit(record, stream)
                    del case_model
                    torch._dynamo.reset()
                    if device.type == "cuda":
                        torch.cuda.empty_cache()


def table(records: list[dict]) -> str:
    """Markdown table: per pair, size, mode and compile setting, Hydra and ViT img/s, peak GiB, MFU and
    GPU ms per step side by side, with the ratios; the issue-4 targets next to the base pair's ratios."""
    header = next(r for r in records if r.get("kind") == "header")
    cases = {(r["model"], r["img_size"], r["mode"], r["compile"]): r for r in records if r.get("kind") == "case"}
    lines = [
        f"{header['date']}, {header['device']}, torch {header['torch']}, triton {header['triton']}, "
        f"{header.get('amp', '')}; MFU against {header['peak_flops'] / 1e12:.0f} TFLOP/s.",
        "",
        "| pair | img | mode | compile | batch | Hydra img/s | ViT img/s | Hydra / ViT img/s | target | met "
        "| Hydra GiB | ViT GiB | Hydra / ViT GiB | Hydra MFU | ViT MFU | Hydra GPU ms | ViT GPU ms |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def value(r: dict | None, key: str, fmt: str) -> str:
        if r is None:
            return "-"
        if r.get("status") != "ok":
            return r.get("status", "-").upper()
        return "-" if r.get(key) is None else format(r[key], fmt)

    def ratio(a: dict | None, b: dict | None, key: str) -> float | None:
        ok = a is not None and b is not None and a.get("status") == b.get("status") == "ok"
        return a[key] / b[key] if ok and a.get(key) is not None and b.get(key) else None

    keys = sorted({k[1:] for k in cases}, key=lambda k: (k[0], k[1] != "infer", str(k[2])))
    for hydra, vit in PAIRS:
        for img, mode, compiled in keys:
            h, v = cases.get((hydra, img, mode, compiled)), cases.get((vit, img, mode, compiled))
            if h is None and v is None:
                continue
            speed, mem = ratio(h, v, "img_s"), ratio(h, v, "peak_gib")
            target = SPEED_TARGETS.get(img) if hydra == "hydra_vit_base" else None
            met = []
            if target is not None and speed is not None:
                met.append("yes" if speed >= target else "no")
            if hydra == "hydra_vit_base" and mode == "train" and mem is not None:
                met.append("mem yes" if mem <= 1 else "mem no")
            batch = (h or v)["batch"]
            lines.append(
                f"| {hydra} / {vit} | {img} | {mode} | {COMPILE_LABELS.get(compiled, compiled)} | {batch} | "
                f"{value(h, 'img_s', '.1f')} | {value(v, 'img_s', '.1f')} | "
                f"{'-' if speed is None else f'{speed:.2f}'} | "
                f"{'-' if target is None else f'>= {target}' + (', GiB <= 1' if mode == 'train' else '')} | "
                f"{', '.join(met) or '-'} | {value(h, 'peak_gib', '.2f')} | {value(v, 'peak_gib', '.2f')} | "
                f"{'-' if mem is None else f'{mem:.2f}'} | {value(h, 'mfu', '.3g')} | {value(v, 'mfu', '.3g')} | "
                f"{value(h, 'gpu_ms', '.1f')} | {value(v, 'gpu_ms', '.1f')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--img-sizes", type=int, nargs="+", default=list(IMG_SIZES))
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help=f"one per image size, or one for all (default {BATCH_SIZES})")
    parser.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=list(COMPILE_MODES),
                        help="eager, torch.compile's default mode, or its CUDA-graph mode")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model-kwargs", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra timm.create_model arguments for every model, e.g. depth=2")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE / 1e12,
                        help="dense peak of the device for MFU (H100 bf16: 989)")
    parser.add_argument("--quick", action="store_true", help="fewer warm-up and timed steps (about 0.5 s of them)")
    parser.add_argument("--profile", action="store_true",
                        help="print each case's profiler tables, by GPU and by host time")
    parser.add_argument("--python-profile", action="store_true",
                        help="print each case's cProfile table (Python functions by own time, 5 steps)")
    parser.add_argument("--sync-debug", action="store_true",
                        help="print each case's synchronising CUDA calls with their Python stacks (2 steps)")
    parser.add_argument("--kernel-times", type=int, default=0, metavar="N",
                        help="record each case's N kernels with the most GPU time per step (us), for A/Bs")
    parser.add_argument("--cold-start", action="store_true",
                        help="instead, time the first step of the first model, size, mode and compile setting "
                             "in this process (compile + autotune on an empty Triton cache)")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--table", type=Path, help="print the markdown table of a JSON-lines file and exit")
    args = parser.parse_args(argv)
    if args.table:
        if not args.table.is_file():
            raise FileNotFoundError(f"--table file {args.table} does not exist")
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
