"""Session 34's emulation (a record, not project code): do R and K from one bf16-rounded tile of M keep dA and
dt_bias's gradient within the low-precision bound of the kernel tests? Causal mix, no shift, one group, fp64 sums.

Per head, W = M o (dy x^T) with dy rounded to bf16 as the kernels get it; da_k = sum over t >= k of R - K; dA and
dt_bias's gradient follow (`triton_mix`'s derivation). Variants: "exact" (fp64 W), "main_fp32W" (R and K summed from
one fp32 W, as the pair kernel does), "consistent_bf16M" (R = dy . (M_bf16 x), K = x . (M_bf16^T dy): both from one
rounded M), "inconsistent" (R from fp32 W, K from the rounded M: session 33's exp-kdx). Each cell: the variant's max
error against the fp32 reference over the bound 2 |ref_bf16 - ref_fp32| + 2^-8 max|ref| (the tests use 2^-7), so
above 1 fails. Run from a checkout: PYTHONPATH=. python benchmarks/results/2026-12-06_h100_s34/consistent_rounding.py
"""
import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
spec = importlib.util.spec_from_file_location("cf", ROOT / "tests/kernels/conftest.py")
cf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cf)
from hydra_vision.kernels.ssd.reference import ssd_causal_mix_reference
from hydra_vision.kernels.quasiseparable.dt import activate_dt

def run(L, H, P, N, seed):
    kw = cf.make_mix_inputs(1, L, H, P, 1, N, dtype=torch.bfloat16, seed=seed, diag=None)
    x, dt, A, B, C, bias = kw["x"], kw["dt_fwd"], kw["A"], kw["B_fwd"], kw["C_fwd"], kw["dt_bias"]
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
    def ref(dtype, gout):
        A_ = A.detach().clone().requires_grad_()
        b_ = bias.detach().clone().requires_grad_()
        y = ssd_causal_mix_reference(x.to(dtype), dt.to(dtype), A_, B.to(dtype), C.to(dtype), None, dt_bias=b_,
                                     dt_softplus=True, chunk_size=256)
        dA, db = torch.autograd.grad(y, [A_, b_], gout.to(y.dtype)); return dA.double(), db.double()
    (dA32, db32), (dAbf, dbbf) = ref(torch.float32, g), ref(torch.bfloat16, g)
    # hand-made dA from W = M o G in fp64 / with roundings, per head
    d = activate_dt(dt.double(), bias.double(), True, (0.0, float("inf")), torch.float64)[0]  # (L, H)
    xs, Bs, Cs = x.double()[0], B.double()[0, :, 0], C.double()[0, :, 0]   # (L,H,P), (L,N)
    dy_b = g.to(torch.bfloat16).double()[0]
    out = {}
    for variant in ("exact", "main_fp32W", "consistent_bf16M", "inconsistent"):
        dA = torch.zeros(H, dtype=torch.float64)
        dbias = torch.zeros(H, dtype=torch.float64)
        for h in range(H):
            a = d[:, h] * A[h].double()
            p = torch.cumsum(a, 0)
            M = (Cs @ Bs.T) * torch.exp(p[:, None] - p[None, :]) * d[None, :, h]
            M = torch.tril(M)
            G = dy_b[:, h] @ xs[:, h].T
            if variant == "exact":
                W = M * G; R = W.sum(1); K = W.sum(0)
            elif variant == "main_fp32W":
                W = (M.float() * G.float()); R = W.sum(1).double(); K = W.sum(0).double()
            else:
                Mb = M.float().to(torch.bfloat16).double()
                Kc = (xs[:, h] * (Mb.T @ dy_b[:, h])).sum(1)       # K from the rounded tile (dx's dot)
                if variant == "consistent_bf16M":
                    R = (dy_b[:, h] * (Mb @ xs[:, h])).sum(1)   # R from the same rounded tile
                else:
                    R = (M * G).sum(1)
                K = Kc
            cr = torch.flip(torch.cumsum(torch.flip(R, [0]), 0), [0])
            ck = torch.flip(torch.cumsum(torch.flip(K, [0]), 0), [0])
            da = cr - ck
            dA[h] = (d[:, h] * da).sum()
            ddt = A[h].double() * da + K / d[:, h]
            raw = dt.double()[0, :, h] + bias.double()[h]
            dbias[h] = (ddt * torch.sigmoid(raw)).sum()
        out[variant] = (dA, dbias)
    for i, (r32, rbf, name) in enumerate(((dA32, dAbf, "dA"), (db32, dbbf, "dt_bias"))):
        pt = (rbf - r32).abs().max().item()
        bound = 2 * pt + 2**-8 * r32.abs().max().item()
        print(f"L={L} seed={seed} {name}: pt_err={pt:.3g} bound={bound:.3g} exact-ref32={(out['exact'][i]-r32).abs().max().item():.3g}",
              {k: round((v[i] - r32).abs().max().item() / bound, 2) for k, v in out.items()})

for L, seed in ((197, 7), (197, 8), (120, 3), (64, 5)):
    run(L, 2, 64, 64, seed)
