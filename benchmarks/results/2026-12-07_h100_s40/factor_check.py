# Session 40: a numerical check of the lead in RESULTS.md (off-diagonal tile pairs in factorised form), fp64 with
# bf16 rounding where the kernels round (MMA operands); one group of 4 heads, L = 197, tiles of 64, shifted lower
# triangle. Prints the relative error of y and dS against fp64 for today's form and the factorised one.
import torch
torch.manual_seed(0)
L, T, H, P, N = 197, 64, 4, 64, 64
def bf(t):
    """t rounded to bf16, kept in fp64."""
    return t.to(torch.bfloat16).to(torch.float64)


def rel(u, v):
    """|u - v| / |v| (Frobenius)."""
    return ((u - v).norm() / v.norm()).item()


def run(dt_scale, A_scale):
    dt = torch.rand(L, H, dtype=torch.float64) * dt_scale
    A = -torch.rand(H, dtype=torch.float64) * A_scale
    x = torch.randn(L, H, P, dtype=torch.float64); dy = torch.randn(L, H, P, dtype=torch.float64)
    B = torch.randn(L, N, dtype=torch.float64) / 8; C = torch.randn(L, N, dtype=torch.float64) / 8
    cum = torch.cumsum(dt * A, 0)                           # (L, H)
    S = C @ B.T                                             # (L, L)
    tri = torch.tril(torch.ones(L, L, dtype=torch.bool), -1)  # strictly lower (shifted)
    dec = torch.exp((cum[:, None, :] - cum[None, :, :]).clamp(max=0)) * tri[..., None]  # (L, L, H)
    M = S[..., None] * dec * dt[None, :, :]                 # (L, L, H)
    y = torch.einsum("ijh,jhp->ihp", M, x)
    dS = torch.einsum("ihp,jhp,ijh->ij", dy, x, dec * dt[None])
    # today's form: M tile rounded to bf16, x in bf16, fp32-ish accumulate
    y_now = torch.einsum("ijh,jhp->ihp", bf(M), bf(x))
    G = torch.einsum("ihp,jhp->ijh", bf(dy), bf(x))
    dS_now = (G * dec * dt[None]).sum(-1)
    # factorised off the diagonal tiles, today's form on them
    y_f = torch.zeros_like(y); dS_f = torch.zeros_like(dS)
    starts = list(range(0, L, T))
    for I0 in starts:
        I = slice(I0, min(I0 + T, L))
        a = torch.exp(cum[I] - cum[I0])                     # (Q, H) <= 1
        for J0 in starts:
            J = slice(J0, min(J0 + T, L))
            if J0 > I0:
                continue
            if J0 == I0:
                y_f[I] += torch.einsum("ijh,jhp->ihp", bf(M[I, J]), bf(x[J]))
                dS_f[I, J] += (torch.einsum("ihp,jhp->ijh", bf(dy[I]), bf(x[J])) * dec[I, J] * dt[None, J]).sum(-1)
                continue
            b = torch.exp(cum[I0] - cum[J])                   # (Q, H) <= 1
            Xp = bf(b[..., None] * dt[J][..., None] * bf(x[J]))
            Yp = bf(a[..., None] * bf(dy[I]))
            y_f[I] += a[..., None] * torch.einsum("ij,jhp->ihp", bf(S[I, J]), Xp)
            dS_f[I, J] += torch.einsum("ihp,jhp->ij", Yp, Xp)
    print(f"dt<{dt_scale} |A|<{A_scale}: cum min {cum.min():.0f}; y rel err now {rel(y_now, y):.2e} factor {rel(y_f, y):.2e};"
          f" dS now {rel(dS_now, dS):.2e} factor {rel(dS_f, dS):.2e}; finite {bool(torch.isfinite(y_f).all() and torch.isfinite(dS_f).all())}")
for s in [(0.1, 1), (1, 16), (5, 16)]:
    run(*s)
