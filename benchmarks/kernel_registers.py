"""Registers, spills and shared memory of the Triton kernels, compiled ahead of time (no GPU needed).

Runs the real launchers (the mix forward and backward, and the depthwise conv and gated norm
ops) on CPU tensors laid out as in the model, with every Triton kernel replaced by a recorder
that keeps the launch's arguments instead of running it. Each recorded launch is then compiled
for the target (default: cuda sm_90, warp 32) once per autotune config that survives the
kernel's pruning, and ptxas -v on the resulting PTX gives registers and spills. Arguments are
specialised as the runtime does: ints equal to 1 become constants, pointers and ints divisible
by 16 get the divisibility hint.

Inputs mirror the Hydra mixer: x, B_f, C_f, B_b, C_b are views into one conv-output-like tensor
(batch, L, H*P + 4*G*N), dt_f / dt_b views of one (batch, L, 2H), a per-token D (batch, L, H),
shift and softplus on (`--diag head|none`, `--no-shift` for the other variants). Since nothing runs,
this also checks that every variant compiles, which the CPU interpreter cannot: it accepts code
the compiler rejects.

    python benchmarks/kernel_registers.py                         # Hydra-ViT-B, bf16 and fp32
    python benchmarks/kernel_registers.py --length 785 --dtypes bf16 --kernels mix_pairs mix_dx mix_bc
    python benchmarks/kernel_registers.py --dtypes bf16 --kernels conv_fwd --sass   # + each loop's SASS
    python benchmarks/kernel_registers.py --dtypes bf16 --kernels norm_bwd --maxnreg 128   # spills under a cap

One header line, then one JSON line per (dtype, kernel, config): compile_s (triton.compile's wall time on
this host, without a cache: what the config adds to a cold start), n_regs, n_spill_stores /
n_spill_loads (bytes), shared (bytes), the global load / store instructions by width (ld_vector,
ld_scalar, st_vector, st_scalar), num_warps, num_stages, maxnreg (the config's register cap, or
--maxnreg's where lower), the block sizes. With --sass also the
machine code's size and, per loop (a backward branch in nvdisasm's listing), its instruction count
and most frequent opcodes: what one step of the loop issues per thread.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

os.environ["TRITON_INTERPRET"] = "0"  # compile real kernels even where the tests use the interpreter

import torch  # noqa: E402
import triton  # noqa: E402

try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction
except ImportError as exc:  # pragma: no cover - depends on the installed Triton
    raise SystemExit(f"kernel_registers.py needs triton.compiler.ASTSource, triton.backends.compiler.GPUTarget, "
                     f"triton.runtime.autotuner.Autotuner (Triton 3.x); this Triton {triton.__version__}: {exc}")

from hydra_vision.kernels import token_diagonal  # noqa: E402
from hydra_vision.kernels.dwconv import triton_conv  # noqa: E402
from hydra_vision.kernels.gated_rmsnorm import triton_norm  # noqa: E402
from hydra_vision.kernels.layernorm import triton_layernorm  # noqa: E402
from hydra_vision.kernels.launcher import triton_kernel  # noqa: E402
from hydra_vision.kernels.quasiseparable import triton_dt, triton_mix, triton_states  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
POINTER_TYPES = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32", torch.int32: "*i32",
                 torch.int64: "*i64"}
# (module, global name) of every kernel the launchers use, under the names printed
KERNELS = {
    "dt_fwd": (triton_dt, "_dt_fwd_kernel"),
    "states": (triton_states, "_states_kernel"),
    "products": (triton_mix, "chunk_products_kernel"),
    "mix_fwd": (triton_mix, "chunk_fwd_kernel"),
    "mix_pairs": (triton_mix, "chunk_bwd_pairs_kernel"),
    "mix_dx": (triton_mix, "chunk_bwd_dx_kernel"),
    "mix_bc": (triton_mix, "chunk_bwd_bc_kernel"),
    "dt_totals": (triton_dt, "_dt_totals_kernel"),
    "dt_bwd": (triton_dt, "_dt_bwd_kernel"),
    "conv_fwd": (triton_conv, "_conv_fwd_kernel"),
    "conv_bwd": (triton_conv, "_conv_bwd_kernel"),
    "norm_fwd": (triton_norm, "_norm_fwd_kernel"),
    "norm_bwd": (triton_norm, "_norm_bwd_kernel"),
    "ln_fwd": (triton_layernorm, "_ln_fwd_kernel"),
    "ln_bwd": (triton_layernorm, "_ln_bwd_kernel"),
    "diag_bwd": (token_diagonal, "_diag_bwd_kernel"),
}
PTXAS_LINE = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
REGS_LINE = re.compile(r"Used (\d+) registers")
GLOBAL_ACCESS = re.compile(r"^\s*(?:@%p\d+\s+)?(ld|st)\.global\S*", re.MULTILINE)
SASS_LINE = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)")
SASS_LABEL = re.compile(r"^\.L_x_(\d+):")
SASS_BRANCH = re.compile(r"\bBRA\b.*\.L_x_(\d+)")


@dataclass
class Launch:
    name: str
    kernel: object
    args: tuple
    kwargs: dict = field(default_factory=dict)


class _Recorder:
    """Stands in for a kernel: `kernel[grid](*args, **kwargs)` only records the call."""

    def __init__(self, name: str, kernel: object, launches: list[Launch]):
        self.name, self.kernel, self.launches = name, kernel, launches

    def __getitem__(self, grid):
        def record(*args, **kwargs):
            self.launches.append(Launch(self.name, self.kernel, args, kwargs))
        return record


def record_launches(batch: int, L: int, H: int, P: int, N: int, G: int, chunk_size: int, dtype: torch.dtype,
                    conv_width: int = 7, diag: str = "data", shift: bool = True) -> list[Launch]:
    """The kernel launches of one Hydra block forward + backward (mix, conv, norms) at these sizes; the
    mix's diagonal term D per token ("data", Hydra's), per head ("head") or absent ("none")."""
    launches: list[Launch] = []
    patches = [mock.patch.object(mod, attr, _Recorder(name, getattr(mod, attr), launches))
               for name, (mod, attr) in KERNELS.items()]
    for p in patches:
        p.start()
    try:
        d_inner, bc = H * P, G * N
        xbc = torch.empty(batch, L, d_inner + 4 * bc, dtype=dtype)
        x = xbc[..., :d_inner].unflatten(-1, (H, P))
        Bf, Cf, Bb, Cb = (xbc[..., d_inner + k * bc: d_inner + (k + 1) * bc].unflatten(-1, (G, N)) for k in range(4))
        dt = torch.empty(batch, L, 2 * H, dtype=dtype)
        dt_f, dt_b = dt[..., :H], dt[..., H:]
        A, dt_bias = torch.empty(H), torch.empty(H)
        D = {"data": torch.empty(batch, L, H, dtype=dtype), "head": torch.empty(H), "none": None}[diag]
        opts = (True, 0.0, float("inf"), shift, chunk_size)  # softplus, dt_limit, shift, chunk_size
        y, dta, cum = triton_mix._forward(x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, *opts)
        triton_mix._backward(torch.empty_like(y), x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dta, cum, *opts)
        if diag == "data":  # the fused layer's backward of D = x w_D^T + D_head
            rows = xbc.view(-1, xbc.shape[-1])[:, :d_inner]
            token_diagonal.token_diagonal_backward_into(rows, rows, D.view(-1, H), torch.empty(H, d_inner))
        weight, cbias = torch.empty(xbc.shape[-1], 1, conv_width, dtype=dtype), torch.empty(xbc.shape[-1], dtype=dtype)
        triton_conv._conv_forward(xbc, weight, cbias, False, xbc.shape[-1])
        triton_conv._conv_backward(torch.empty_like(xbc), xbc, weight, cbias, False, xbc.shape[-1])
        z = torch.empty(batch, L, d_inner, dtype=dtype)
        _, rstd = triton_norm._norm_forward(z, z, torch.empty(d_inner, dtype=dtype), 1e-5)
        triton_norm._norm_backward(z, z, z, torch.empty(d_inner, dtype=dtype), rstd)
        triton_norm.norm_backward_into(z, z, z, torch.empty(d_inner, dtype=dtype), rstd, z, z)  # out rewritten
        u, width = torch.empty(batch, L, d_inner // 2, dtype=dtype), torch.empty(d_inner // 2)  # the block's input
        _, mean, rstd = triton_layernorm._ln_forward(u, width, width, 1e-6, dtype)
        triton_layernorm._ln_backward(u, u, width, width, mean, rstd)
    finally:
        for p in patches:
            p.stop()
    return launches


def _specialise(fn: JITFunction, args: tuple, kwargs: dict, config_kwargs: dict) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) for ASTSource, as the runtime would specialise this call."""
    defaults = {name: p.default for name, p in fn.signature.parameters.items() if p.default is not p.empty}
    values = defaults | dict(zip(fn.arg_names, args)) | kwargs | config_kwargs
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, param) in enumerate(zip(fn.arg_names, fn.params)):
        if name not in values:
            raise ValueError(f"{fn.__name__}: no value for argument {name!r}")
        v = values[name]
        if param.is_constexpr or v is None or (isinstance(v, int) and not isinstance(v, bool) and v == 1):
            signature[name] = "constexpr"
            constexprs[name] = v
            continue
        if isinstance(v, torch.Tensor):
            signature[name] = POINTER_TYPES[v.dtype]
            aligned = (v.data_ptr() % 16 == 0) if v.numel() else True
        elif isinstance(v, bool):
            signature[name], aligned = "i1", False
        elif isinstance(v, int):
            signature[name] = "i32" if -2**31 <= v < 2**31 else "i64"
            aligned = v % 16 == 0
        elif isinstance(v, float):
            signature[name], aligned = "fp32", False
        else:
            raise TypeError(f"{fn.__name__}: argument {name!r} of type {type(v).__name__}")
        if aligned:
            attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def _configs(launch: Launch) -> tuple[JITFunction, list]:
    """The JIT function and the configs the autotuner would time (one default config when not autotuned)."""
    kernel = triton_kernel(launch.kernel)
    if not isinstance(kernel, Autotuner):
        return kernel, [triton.Config({}, num_warps=launch.kwargs.get("num_warps", 4),
                                      num_stages=launch.kwargs.get("num_stages", 3))]
    fn = kernel.fn
    if not isinstance(fn, JITFunction):
        raise TypeError(f"{launch.name}: only plain @triton.jit under @triton.autotune is supported")
    configs = kernel.configs
    if kernel.early_config_prune:
        configs = kernel.early_config_prune(configs, dict(zip(fn.arg_names, launch.args)), **launch.kwargs)
    return fn, configs


def ptxas_path(arch: int) -> str:
    """The ptxas that Triton uses for this arch (its bundled one unless TRITON_PTXAS_PATH says otherwise)."""
    from triton.backends.nvidia.compiler import get_ptxas
    tool = get_ptxas(arch) if "arch" in get_ptxas.__code__.co_varnames else get_ptxas()
    return tool.path if hasattr(tool, "path") else tool[0]  # older Triton: (path, version)


def ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers and spill bytes from `ptxas -v` on the kernel's PTX (the register count equals that of the
    cubin Triton builds, checked with cuobjdump -res-usage on Triton 3.8)."""
    ptxas = ptxas_path(arch)
    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        res = subprocess.run([ptxas, "-lineinfo", "-v", f"--gpu-name={gpu}", str(src), "-o", str(src) + ".o"],
                             capture_output=True, text=True, check=True)
    log = res.stderr + res.stdout
    regs, spill = REGS_LINE.search(log), PTXAS_LINE.search(log)
    if regs is None or spill is None:
        raise RuntimeError(f"unexpected ptxas -v output:\n{log}")
    return {"n_regs": int(regs.group(1)), "n_spill_stores": int(spill.group(1)), "n_spill_loads": int(spill.group(2))}


def global_accesses(ptx: str) -> dict:
    """Global loads and stores in the PTX by width: vector (.v2 / .v4) or one element each. Triton vectorizes
    only where it can prove alignment and a uniform mask over the vector, e.g. not for a row offset h * L or a
    mask pos < L when the int L is not a multiple of 16 (the only divisibility it specializes on)."""
    counts = {"ld_vector": 0, "ld_scalar": 0, "st_vector": 0, "st_scalar": 0}
    for match in GLOBAL_ACCESS.finditer(ptx):
        op = match.group(0)
        counts[f"{match.group(1)}_{'vector' if '.v2' in op or '.v4' in op else 'scalar'}"] += 1
    return counts


def sass_loops(listing: str, top: int = 8) -> dict:
    """Size of nvdisasm's listing and, per loop (a branch back to an earlier label), its instruction count
    and its `top` most frequent opcodes, innermost loops first."""
    ops: list[str] = []
    labels: dict[str, int] = {}
    loops = []
    for line in listing.splitlines():
        label = SASS_LABEL.match(line)
        if label:
            labels[label.group(1)] = len(ops)
            continue
        op = SASS_LINE.match(line)
        if not op:
            continue
        ops.append(op.group(1))
        back = SASS_BRANCH.search(line)
        if back and back.group(1) in labels and labels[back.group(1)] < len(ops) - 1:
            body = ops[labels[back.group(1)]:]
            loops.append({"instructions": len(body), "top": dict(Counter(body).most_common(top))})
    return {"sass_instructions": len(ops), "loops": sorted(loops, key=lambda lp: lp["instructions"])}


def disassemble(cubin: bytes, arch: int) -> str:
    """nvdisasm's listing of a cubin (the nvdisasm next to Triton's ptxas)."""
    tool = Path(ptxas_path(arch)).with_name("nvdisasm")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([str(tool), "-c", f.name], capture_output=True, text=True, check=True).stdout


def compile_launch(launch: Launch, target: GPUTarget, sass: bool = False, maxnreg: int | None = None) -> list[dict]:
    """One row per config of this launch: its resources on the target. `maxnreg` caps every config's registers
    a thread (ptxas's maxnreg; a config's own lower cap stays)."""
    fn, configs = _configs(launch)
    kwargs = {k: v for k, v in launch.kwargs.items() if k not in ("num_warps", "num_stages", "maxnreg")}
    rows = []
    for cfg in configs:
        signature, constexprs, attrs = _specialise(fn, launch.args, kwargs, cfg.kwargs)
        options = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
        caps = [c for c in (getattr(cfg, "maxnreg", None), launch.kwargs.get("maxnreg"), maxnreg) if c]
        if caps:
            options["maxnreg"] = min(caps)
        start = time.perf_counter()
        compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs),
                                  target=target, options=options)
        seconds = time.perf_counter() - start
        blocks = {k: v for k, v in constexprs.items() if k.startswith("BLOCK") or k in cfg.kwargs}
        rows.append({"kernel": launch.name, **blocks, "num_warps": cfg.num_warps, "num_stages": cfg.num_stages,
                     "maxnreg": options.get("maxnreg"), "compile_s": round(seconds, 2),
                     **ptxas_usage(compiled.asm["ptx"], target.arch),
                     "shared": compiled.metadata.shared,
                     **global_accesses(compiled.asm["ptx"]),
                     **{k: v for k, v in constexprs.items() if k in ("DOT_PREC", "Q", "BIDIR")},
                     **(sass_loops(disassemble(compiled.asm["cubin"], target.arch)) if sass else {})})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--length", type=int, default=197)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--headdim", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=64)
    ap.add_argument("--ngroups", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=sorted(DTYPES))
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    ap.add_argument("--diag", default="data", choices=["data", "head", "none"],
                    help="the mix's D: per token (Hydra's), per head, or none")
    ap.add_argument("--no-shift", dest="shift", action="store_false", help="the unshifted bidirectional mix")
    ap.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for H100")
    ap.add_argument("--warp-size", type=int, default=32)
    ap.add_argument("--sass", action="store_true", help="also each loop's SASS instruction count and opcodes")
    ap.add_argument("--maxnreg", type=int, help="compile every config under this register cap a thread (what a "
                    "cap would cost in spills)")
    args = ap.parse_args(argv)
    target = GPUTarget("cuda", args.arch, args.warp_size)
    shape = dict(batch=args.batch, L=args.length, H=args.heads, P=args.headdim, N=args.d_state, G=args.ngroups,
                 chunk_size=args.chunk_size)
    version = subprocess.run([ptxas_path(args.arch), "--version"], capture_output=True, text=True).stdout
    ptxas = next((ln.split(", ")[-1] for ln in version.splitlines() if "release" in ln), version.strip())
    print(json.dumps({"kind": "header", "triton": triton.__version__, "torch": torch.__version__, "ptxas": ptxas,
                      "target": f"cuda sm_{args.arch} warp {args.warp_size}", **shape, "diag": args.diag,
                      "shift": args.shift}), flush=True)
    for dname in args.dtypes:
        seen = set()
        for launch in record_launches(**shape, dtype=DTYPES[dname], diag=args.diag, shift=args.shift):
            key = (launch.name, tuple(sorted((k, str(v)) for k, v in launch.kwargs.items())))
            if launch.name not in args.kernels or key in seen:
                continue
            seen.add(key)
            for row in compile_launch(launch, target, args.sass, args.maxnreg):
                print(json.dumps({"dtype": dname, **row}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
