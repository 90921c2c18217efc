"""Mixer-only benchmark: the quasiseparable mix vs its baselines, forward and forward+backward.

Cases, all at the mixer's width (H heads of P, d_state N, G groups; defaults: d_model 768,
so 24 heads of 64, N = 64, G = 1) and a constant number of tokens per batch:
    triton     quasiseparable_mix, backend 'triton' (our fused kernels)
    reference  quasiseparable_mix, backend 'reference' (chunked PyTorch)
    two_pass   the official Hydra construction: cat([x, flip(x)]) -> ONE causal chunked scan of
               the doubled batch (our triton `ssd_causal_mix`) -> roll, zero row 0 -> flip back, add, + D x
    causal     one causal chunked scan of the same batch (`ssd_causal_mix`, triton): the
               "bidirectional should cost little more than causal" yardstick
    sdpa_h{n}  torch SDPA, flash backend, n heads of 64 (n = d_model / 64: ViT's attention at the
               same model width; and n = H: the mixer's inner width)
    sdpa_cudnn_h{n}  torch SDPA, cuDNN backend, d_model / 64 heads: the attention timm's ViT runs by default on
               an H100 (torch 2.11), faster there than the flash backend
Inputs are bf16 views into one projection-like tensor, as in the model. Before timing, the
triton and two-pass outputs are checked against the reference (correctness gate).

    python benchmarks/bench_mixer.py [--lengths 197 785 ...] [--modes fwd fwdbwd] [--out FILE] [--profile]
    ncu --profile-from-start off ... python benchmarks/bench_mixer.py --ncu-window --lengths 197   (gpu_check.sh ncu)
    python benchmarks/bench_mixer.py --table FILE      (markdown table with the target ratios, no GPU)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

PROCESS_START = time.perf_counter()
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cpu_time_ms, emit, env_header, gpu_busy_ms, peak_memory_gib, profile_table, time_ms  # noqa: E402

from hydra_vision.kernels import quasiseparable_mix, ssd_causal_mix  # noqa: E402
from hydra_vision.kernels.quasiseparable.chunk_tuning import AUTO, DEFAULT_CHUNK, resolve_chunk_size  # noqa: E402
from hydra_vision.kernels.quasiseparable.triton_mix import chunk_length  # noqa: E402

LENGTHS = (197, 785, 1025, 4097, 16385)
CASES = ("triton", "reference", "two_pass", "causal", "sdpa", "sdpa_cudnn")
SDPA_BACKENDS = {"sdpa": "FLASH_ATTENTION", "sdpa_cudnn": "CUDNN_ATTENTION"}  # case -> torch's SDPBackend


def mixer_flops(batch: int, L: int, H: int, P: int, G: int, N: int, Q: int) -> float:
    """Forward multiply-adds x 2 of the chunked algorithm: the dense Q x Q blocks (C B^T per
    group and direction, the mixing matrix times x per head) plus, past one chunk, the
    states (built and read, both directions)."""
    qe = min(L, Q)
    intra = 2 * batch * L * qe * (H * P + 2 * G * N)
    states = 0 if L <= Q else 2 * 2 * 2 * batch * L * H * P * N
    return float(intra + states)


def make_inputs(batch: int, L: int, H: int, P: int, G: int, N: int, dtype: torch.dtype, seed: int = 0,
                device: str = "cuda") -> dict:
    """Leaves (requires_grad) and the mix's keyword arguments as strided views of them."""
    gen = torch.Generator(device=device).manual_seed(seed)
    dev = dict(device=device, dtype=dtype)
    xbc = (torch.randn(batch, L, H * P + 4 * G * N, generator=gen, **dev) * 0.5).requires_grad_()
    dt = (torch.randn(batch, L, 2 * H, generator=gen, **dev) - 4.0).requires_grad_()
    D = torch.randn(batch, L, H, generator=gen, **dev).requires_grad_()
    A = (-torch.exp(torch.rand(H, device=device) * math.log(16))).requires_grad_()
    dt_bias = (torch.rand(H, device=device) - 2.0).requires_grad_()
    x, B_f, C_f, B_b, C_b = xbc.split([H * P, G * N, G * N, G * N, G * N], dim=-1)
    kw = dict(
        x=x.unflatten(-1, (H, P)), dt_fwd=dt[..., :H], dt_bwd=dt[..., H:], A=A,
        B_fwd=B_f.unflatten(-1, (G, N)), C_fwd=C_f.unflatten(-1, (G, N)),
        B_bwd=B_b.unflatten(-1, (G, N)), C_bwd=C_b.unflatten(-1, (G, N)), D=D,
        dt_bias=dt_bias, dt_softplus=True,
    )
    return {"leaves": [xbc, dt, D, A, dt_bias], "kw": kw}


def parse_chunk_size(value: str) -> int | str | None:
    """--chunk-size: an int, "auto" (the models' rule by length) or "tuned" (None: timed per shape)."""
    if value == AUTO:
        return AUTO
    if value == "tuned":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"chunk size must be an int, 'auto' or 'tuned', not {value!r}") from None


def two_pass(kw: dict, chunk_size: int | str | None) -> torch.Tensor:
    """The official construction on our causal kernel: flip + concat, one scan, roll, flip back."""
    x, batch = kw["x"], kw["x"].shape[0]
    y = ssd_causal_mix(
        torch.cat([x, x.flip(1)]), torch.cat([kw["dt_fwd"], kw["dt_bwd"].flip(1)]), kw["A"],
        torch.cat([kw["B_fwd"], kw["B_bwd"].flip(1)]), torch.cat([kw["C_fwd"], kw["C_bwd"].flip(1)]),
        dt_bias=kw["dt_bias"], dt_softplus=True, chunk_size=chunk_size, backend="triton",
    )
    y = torch.roll(y, 1, dims=1)
    y[:, 0] = 0
    return y[:batch] + y[batch:].flip(1) + kw["D"][..., None] * x


def case_fn(case: str, kw: dict, chunk_size: int | str | None) -> Callable[[], torch.Tensor]:
    if case in ("triton", "reference"):
        return lambda: quasiseparable_mix(**kw, chunk_size=chunk_size, backend=case)
    if case == "two_pass":
        return lambda: two_pass(kw, chunk_size)
    if case == "causal":
        return lambda: ssd_causal_mix(
            kw["x"], kw["dt_fwd"], kw["A"], kw["B_fwd"], kw["C_fwd"], kw["D"],
            dt_bias=kw["dt_bias"], dt_softplus=True, chunk_size=chunk_size, backend="triton",
        )
    raise ValueError(f"unknown case {case!r}")


def sdpa_inputs(batch: int, L: int, heads: int, dtype: torch.dtype) -> list[torch.Tensor]:
    qkv = torch.randn(3, batch, heads, L, 64, device="cuda", dtype=dtype).requires_grad_()
    return [qkv]


def attention_case(case: str, batch: int, L: int, heads: int, dtype: torch.dtype, mode: str) -> dict:
    """`run_case` of torch SDPA on `heads` heads of 64 through the case's backend (`SDPA_BACKENDS`); a backend
    this device or torch lacks gives {"status": "unavailable: ..."} instead."""
    backend = getattr(torch.nn.attention.SDPBackend, SDPA_BACKENDS[case])
    qkv = sdpa_inputs(batch, L, heads, dtype)

    def attn() -> torch.Tensor:
        with torch.nn.attention.sdpa_kernel(backend):
            return F.scaled_dot_product_attention(qkv[0][0], qkv[0][1], qkv[0][2])

    try:
        attn()
    except RuntimeError as error:  # torch: "No available kernel" for a backend it cannot run here
        return {"status": f"unavailable: {str(error).splitlines()[0]}"}
    return run_case(case, attn, qkv, mode)


def check_against_reference(kw: dict, chunk_size: int | str | None) -> dict:
    """Relative max error of triton and two_pass vs the reference (fp32 inside) on this input."""
    with torch.no_grad():
        ref = quasiseparable_mix(**kw, chunk_size=chunk_size, backend="reference").float()
        scale = ref.abs().max().item()
        out = {}
        for case in ("triton", "two_pass"):
            y = case_fn(case, kw, chunk_size)().float()
            out[case] = (y - ref).abs().max().item() / scale
    return out


def run_case(name: str, fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor], mode: str,
             cpu_reps: int = 0) -> dict:
    """Time fn() without grad (fwd) or fn().backward (fwdbwd): do_bench, the peak memory and the GPU's busy time
    (`gpu_ms`, the time without the host's share) on CUDA;
    with cpu_reps, the median of that many runs by the host clock, the leaves' grads dropped after each."""
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return fn()
    else:
        grad = None

        def step():
            nonlocal grad
            y = fn()
            if grad is None:
                grad = torch.randn_like(y)
            y.backward(grad)
    step()  # compile / autotune outside the timed region
    if cpu_reps:
        def clean_step():
            step()
            for t in leaves:
                t.grad = None

        return cpu_time_ms(clean_step, warmup=0, reps=cpu_reps)
    stats = time_ms(step, grad_to_none=leaves)
    stats["peak_gib"] = peak_memory_gib(step)
    stats["gpu_ms"] = gpu_busy_ms(step)
    return stats


def warm_step(kw: dict, chunk_size: int | str | None, case: str = "triton") -> Callable[[], None]:
    """One forward+backward of `case` as a function, after three runs (compiled and autotuned)."""
    fn = case_fn(case, kw, chunk_size)

    def step():
        y = fn()
        y.backward(torch.ones_like(y))

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    return step


def profile(kw: dict, chunk_size: int | str | None, case: str, label: str, rows: int = 15) -> None:
    """torch.profiler table of the CUDA kernels of one forward+backward of `case`."""
    step = warm_step(kw, chunk_size, case)
    print(profile_table(step, label, steps=5, rows=rows, sort_by=("cuda_time_total",), cpu_ops=False))


def ncu_window(kw: dict, chunk_size: int | str | None) -> None:
    """One warm triton forward+backward between cudaProfilerStart and Stop, the only kernels that
    `ncu --profile-from-start off` profiles (autotuning's launches stay outside)."""
    step = warm_step(kw, chunk_size)
    torch.cuda.cudart().cudaProfilerStart()
    step()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


def table(records: list[dict]) -> str:
    """Markdown table of one run's JSON lines: times (ms), peaks (GiB) and the issue's target ratios."""
    header = next(r for r in records if r.get("kind") == "header")
    cases: dict[tuple[int, str], dict[str, dict]] = {}
    for r in records:
        if r.get("kind") == "case":
            cases.setdefault((r["L"], r["mode"]), {})[r["case"]] = r
    h_attn = header["d_model"] // 64
    lines = [
        f"{header['date']}, {header['device']}, torch {header['torch']}, triton {header['triton']}; "
        f"mixer at d_model {header['d_model']} (H={header['H']} x P={header['P']}, N={header['N']}, "
        f"G={header['G']}), {header['dtype']}, {header['tokens']} tokens per batch, chunk_size "
        f"{header.get('chunk_size', 256)}.",
        "",
        f"| L | batch | mode | triton ms | two-pass ms | causal ms | reference ms | SDPA h{h_attn} ms "
        f"| SDPA h{header['H']} ms | two-pass / triton (>= 2) | triton / causal (<= 1.3) "
        "| SDPA / triton (> 1 from L 1025) | triton / causal, GPU time | triton peak GiB "
        f"| SDPA cuDNN h{h_attn} ms | SDPA cuDNN / triton |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ms(row: dict, name: str) -> str:
        return f"{row[name]['ms']:.3f}" if "ms" in row.get(name, {}) else "-"  # absent, or unavailable there

    def ratio(row: dict, num: str, den: str, key: str = "ms") -> str:
        return f"{row[num][key] / row[den][key]:.2f}" if key in row.get(num, {}) and key in row.get(den, {}) else "-"

    for (L, mode), row in sorted(cases.items()):
        batch = next(iter(row.values()))["batch"]
        peak = f"{row['triton']['peak_gib']:.2f}" if "triton" in row else "-"
        lines.append(
            f"| {L} | {batch} | {mode} | {ms(row, 'triton')} | {ms(row, 'two_pass')} | {ms(row, 'causal')} | "
            f"{ms(row, 'reference')} | {ms(row, f'sdpa_h{h_attn}')} | {ms(row, 'sdpa_h' + str(header['H']))} | "
            f"{ratio(row, 'two_pass', 'triton')} | {ratio(row, 'triton', 'causal')} | "
            f"{ratio(row, f'sdpa_h{h_attn}', 'triton')} | {ratio(row, 'triton', 'causal', 'gpu_ms')} | {peak} | "
            f"{ms(row, f'sdpa_cudnn_h{h_attn}')} | {ratio(row, f'sdpa_cudnn_h{h_attn}', 'triton')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--tokens", type=int, default=128 * 197, help="tokens per batch (batch = tokens // L)")
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--headdim", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--ngroups", type=int, default=1)
    parser.add_argument("--chunk-size", type=parse_chunk_size, default=AUTO,
                        help="chunk length; 'auto' (default): the models' rule, one chunk up to 256 tokens and "
                             "64 beyond; 'tuned': timed per shape (chunk_size=None)")
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwdbwd"], choices=["fwd", "fwdbwd"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--profile", action="store_true",
                        help="instead, a profiler table per length and case (sdpa left out)")
    parser.add_argument("--ncu-window", action="store_true",
                        help="instead, one warm triton forward+backward per length inside cudaProfilerStart/Stop (for ncu)")
    parser.add_argument("--cold-start", action="store_true",
                        help="time the first triton forward+backward of this process (compile + autotune) "
                             "at the first length")
    parser.add_argument("--table", type=Path, help="print the markdown table of a JSON-lines file and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return 0
    dtype = getattr(torch, args.dtype)
    H = 2 * args.d_model // args.headdim
    P, N, G = args.headdim, args.d_state, args.ngroups
    stream = args.out.open("a") if args.out else None
    chunk = "tuned" if args.chunk_size is None else args.chunk_size
    emit({**env_header(), "bench": "mixer", "d_model": args.d_model, "H": H, "P": P, "N": N, "G": G,
          "dtype": args.dtype, "tokens": args.tokens, "chunk_size": chunk}, stream)
    for L in args.lengths:
        batch = max(1, args.tokens // L)
        inputs = make_inputs(batch, L, H, P, G, N, dtype)
        kw, leaves = inputs["kw"], inputs["leaves"]
        if args.cold_start:
            torch.cuda.synchronize()
            start = time.perf_counter()
            case_fn("triton", kw, args.chunk_size)().sum().backward()
            torch.cuda.synchronize()
            emit({"kind": "cold_start", "L": L, "batch": batch, "first_fwdbwd_s": round(time.perf_counter() - start, 2),
                  "process_s": round(time.perf_counter() - PROCESS_START, 2)}, stream)
            return 0
        if args.profile:
            for case in (c for c in args.cases if c not in SDPA_BACKENDS):
                profile(kw, args.chunk_size, case, f"{case} B{batch}_L{L}_D{args.d_model}")
            continue
        if args.ncu_window:
            ncu_window(kw, args.chunk_size)
            continue
        errors = check_against_reference(kw, args.chunk_size)
        gate = all(e < 3e-2 for e in errors.values())
        emit({"kind": "gate", "L": L, "batch": batch, "rel_err": errors, "passed": gate}, stream)
        Q = chunk_length(L, resolve_chunk_size(args.chunk_size, L) or DEFAULT_CHUNK)  # "tuned" counted at 256
        flops = mixer_flops(batch, L, H, P, G, N, Q)
        for mode in args.modes:
            for case in args.cases:
                if case in ("triton", "two_pass") and not gate:
                    continue
                record = {"kind": "case", "name": f"B{batch}_L{L}_D{args.d_model}", "L": L, "batch": batch,
                          "mode": mode, "chunk_size": chunk}
                if case in SDPA_BACKENDS:
                    heads_set = sorted({args.d_model // 64, H}) if case == "sdpa" else [args.d_model // 64]
                    for heads in heads_set:
                        emit({**record, "case": f"{case}_h{heads}", **attention_case(case, batch, L, heads, dtype, mode)},
                             stream)
                    continue
                stats = run_case(case, case_fn(case, kw, args.chunk_size), leaves, mode)
                if case == "triton":
                    stats["tflops"] = round(flops * (3.5 if mode == "fwdbwd" else 1.0) / stats["ms"] / 1e9, 1)
                emit({**record, "case": case, **stats}, stream)
        del inputs, kw, leaves
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
