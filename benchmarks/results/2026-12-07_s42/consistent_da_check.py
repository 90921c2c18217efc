# Session 42: does a decay gradient from rounded tiles meet the tests' rule when R and K are sums of the SAME
# rounded terms? Session 41's check (factor_da_check.py) rounded R's operands but took K from unrounded values, and
# session 33's dropped form took R from the exact tile and K from the rounded one. Inputs are bf16 values; the
# truth is fp64 on them with dy unrounded; "pt" is the reference's own error (dy rounded to bf16, the rest exact),
# which the tests' bound doubles. Prints each form's max dA error over the heads as a multiple of pt's.
# One group of 4 heads, L = 197, tiles of 64.
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "2026-12-07_s41"))
from factor_da_check import H, L, N, P, T, bf, decay_gradient, f32  # noqa: E402  (session 41's shapes and helpers)


def lower_tile_pairs():
    """(rows, columns, the rows' first index) of every tile pair on or below the diagonal."""
    starts = range(0, L, T)
    return [(slice(i, min(i + T, L)), slice(j, min(j + T, L)), i) for i in starts for j in starts if j <= i]


def consistent_factorised_sums(S, W_diag, dt, x, dy, cum):
    """R and K of the factorised form with every term rounded once for both: the diagonal tile pairs from the
    rounded tile W_diag, the others from bf16 operands a dy, b dt x, S with tile-local reference points."""
    R = torch.zeros(L, H, dtype=torch.float64)
    K = torch.zeros(L, H, dtype=torch.float64)
    for rows, cols, r0 in lower_tile_pairs():
        if cols.start == r0:
            W = W_diag[rows, cols]
        else:
            a, b = torch.exp(cum[rows] - cum[r0]), torch.exp(cum[r0] - cum[cols])
            y_op, x_op = bf(a[..., None] * dy[rows]), bf(b[..., None] * dt[cols][..., None] * x[cols])
            W = bf(S[rows, cols])[..., None] * torch.einsum("ihp,jhp->ijh", y_op, x_op)
        R[rows] += W.sum(1)
        K[cols] += W.sum(0)
    return R, K


def run(dt_scale, A_scale, seed):
    g = torch.Generator().manual_seed(seed)
    dt = f32(torch.rand(L, H, dtype=torch.float64, generator=g) * dt_scale)
    A = -torch.rand(H, dtype=torch.float64, generator=g) * A_scale
    x = bf(torch.randn(L, H, P, dtype=torch.float64, generator=g))
    dy32 = f32(torch.randn(L, H, P, dtype=torch.float64, generator=g))
    dy = bf(dy32)
    B = bf(torch.randn(L, N, dtype=torch.float64, generator=g) / 8)
    C = bf(torch.randn(L, N, dtype=torch.float64, generator=g) / 8)
    cum = torch.cumsum(dt * A, 0)
    S = C @ B.T
    tri = torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
    dec = torch.exp((cum[:, None, :] - cum[None, :, :]).clamp(max=0)) * tri[..., None]

    def dA(R, K):
        return (dt * decay_gradient(R, K)).sum(0)

    def dA_of(W):
        return dA(W.sum(1), W.sum(0))

    G, G32 = torch.einsum("ihp,jhp->ijh", dy, x), torch.einsum("ihp,jhp->ijh", dy32, x)
    truth = dA_of(S[..., None] * dec * dt[None] * G32)
    forms = {"pt": dA_of(S[..., None] * dec * dt[None] * G)}
    W_now = f32(f32(S)[..., None] * dec * dt[None] * f32(G))  # today: R and K from one fp32 tile
    forms["today"] = dA_of(W_now)
    W_rounded = bf(S[..., None] * dec) * dt[None] * G  # dx's bf16 operand M = rnd(S o decay) in both sums
    forms["consistent bf16 tile"] = dA_of(W_rounded)
    forms["s33 inconsistent"] = dA(W_now.sum(1), W_rounded.sum(0))  # R exact, K from the rounded tile
    forms["consistent factorised"] = dA(*consistent_factorised_sums(S, W_rounded, dt, x, dy, cum))
    errs = {name: (v - truth).abs().max().item() for name, v in forms.items()}
    print(f"dt<{dt_scale} |A|<{A_scale} seed {seed}: pt_err/max {errs['pt'] / truth.abs().max().item():.1e} | "
          "ratio to pt_err: " + ", ".join(f"{name} {err / errs['pt']:.2f}" for name, err in errs.items()
                                          if name != "pt"))


for scales in [(0.1, 1), (1, 16), (5, 16), (0.01, 1)]:
    for seed in (0, 1):
        run(*scales, seed)
