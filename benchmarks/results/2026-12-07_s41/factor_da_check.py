# Session 41: does session 40's factorised off-diagonal form keep the decay gradient precise? da[k] = sum over pairs
# i >= k > j of W[i, j] (W = S o decay o dt o dy x^T per head, shifted lower triangle) is the cumulated difference of
# the row sums R and column sums K of W, so R and K must round alike. Inputs are bf16 values (as the kernels get
# them); the reference is fp64 on those values. Today's form sums R and K from one fp32 tile per head. The
# factorised form (off the diagonal tiles) takes R = Y'.(S X') and K = (b dt x).(S^T Y') from bf16 MMA operands
# S, X' = b dt x, Y' = a dy. Session 33's dropped form (K from one bf16 tile dot in dx, R as today) for scale. Prints
# the relative error of da (Frobenius) and of dA = sum_k dt da (max over heads, against the largest |dA|).
# One group of 4 heads, L = 197, tiles of 64.
import torch

torch.manual_seed(0)
L, T, H, P, N = 197, 64, 4, 64, 64


def bf(t):
    """t rounded to bf16, kept in fp64."""
    return t.to(torch.bfloat16).to(torch.float64)


def f32(t):
    """t rounded to fp32, kept in fp64."""
    return t.to(torch.float32).to(torch.float64)


def decay_gradient(R, K):
    """da[k] = sum_{t >= k} (R - K)[t], per head: (L, H)."""
    return torch.flip(torch.cumsum(torch.flip(R - K, [0]), 0), [0])


def factorised_sums(S, dec, dt, x, dy, cum):
    """R and K with today's fp32 tiles on the diagonal tile pairs and bf16 MMA operands off them."""
    R = torch.zeros(L, H, dtype=torch.float64)
    K = torch.zeros(L, H, dtype=torch.float64)
    starts = range(0, L, T)
    for I0 in starts:
        I = slice(I0, min(I0 + T, L))
        a = torch.exp(cum[I] - cum[I0])
        for J0 in [j for j in starts if j <= I0]:
            J = slice(J0, min(J0 + T, L))
            if J0 == I0:
                W = f32(S[I, J, None] * dec[I, J] * dt[None, J] * torch.einsum("ihp,jhp->ijh", dy[I], x[J]))
                R[I] += W.sum(1)
                K[J] += W.sum(0)
                continue
            b = torch.exp(cum[I0] - cum[J])
            Xp, Yp, Sb = bf(b[..., None] * dt[J][..., None] * x[J]), bf(a[..., None] * dy[I]), bf(S[I, J])
            R[I] += torch.einsum("ihp,ihp->ih", Yp, f32(torch.einsum("ij,jhp->ihp", Sb, Xp)))
            K[J] += dt[J] * torch.einsum("jhp,jhp->jh", b[..., None] * x[J], f32(torch.einsum("ij,ihp->jhp", Sb, Yp)))
    return R, K


def run(dt_scale, A_scale):
    dt = f32(torch.rand(L, H, dtype=torch.float64) * dt_scale)
    A = -torch.rand(H, dtype=torch.float64) * A_scale
    x, dy = bf(torch.randn(L, H, P, dtype=torch.float64)), bf(torch.randn(L, H, P, dtype=torch.float64))
    B, C = bf(torch.randn(L, N, dtype=torch.float64) / 8), bf(torch.randn(L, N, dtype=torch.float64) / 8)
    cum = torch.cumsum(dt * A, 0)
    S = C @ B.T
    tri = torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
    dec = torch.exp((cum[:, None, :] - cum[None, :, :]).clamp(max=0)) * tri[..., None]
    W = S[..., None] * dec * dt[None] * torch.einsum("ihp,jhp->ijh", dy, x)
    da = decay_gradient(W.sum(1), W.sum(0))
    W_now = f32(f32(S)[..., None] * dec * dt[None] * f32(torch.einsum("ihp,jhp->ijh", dy, x)))
    da_now = decay_gradient(W_now.sum(1), W_now.sum(0))
    da_fac = decay_gradient(*factorised_sums(S, dec, dt, x, dy, cum))
    M16 = bf(S[..., None] * dec)  # session 33's dropped form: K from one bf16 tile dot in dx, R as today
    K16 = dt * torch.einsum("jhp,jhp->jh", x, f32(torch.einsum("ijh,ihp->jhp", M16, dy)))
    da_16 = decay_gradient(W_now.sum(1), K16)
    forms = {"today": da_now, "factorised": da_fac, "bf16 tile (s33)": da_16}
    errs = {name: ((d - da).norm() / da.norm()).item() for name, d in forms.items()}
    dA = (dt * da).sum(0)
    dA_errs = {name: ((dt * d).sum(0) - dA).abs().max().item() / dA.abs().max().item() for name, d in forms.items()}
    print(f"dt<{dt_scale} |A|<{A_scale}: " + "; ".join(
        f"{name} da {errs[name]:.1e} dA {dA_errs[name]:.1e}" for name in forms))


if __name__ == "__main__":
    for scales in [(0.1, 1), (1, 16), (5, 16)]:
        run(*scales)
