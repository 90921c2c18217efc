"""The reference forms of the quasiseparable mix against each other and against Hydra's math.

naive (materialised matrix, direct index formula), scan (plain recurrence) and
reference (chunked SSD) must agree; the matrix must have Hydra's structure; the
official construction (flip, causal scan, roll, flip back) must give the same y.
"""
from __future__ import annotations

import math

import pytest
import torch

from hydra_vision.kernels import get_default_backend, quasiseparable_mix, set_default_backend
from hydra_vision.kernels.quasiseparable import naive as naive_module
from hydra_vision.kernels.quasiseparable import reference as reference_module
from hydra_vision.kernels.quasiseparable.dt import activate_dt
from hydra_vision.kernels.quasiseparable.naive import (
    quasiseparable_matrix,
    quasiseparable_mix_naive,
    quasiseparable_mix_scan,
    semiseparable_matrix,
)
from hydra_vision.kernels.quasiseparable.reference import quasiseparable_mix_reference, reference_chunk

GRAD_INPUTS = ("x", "dt_fwd", "dt_bwd", "A", "B_fwd", "C_fwd", "B_bwd", "C_bwd", "D", "dt_bias")
MATRIX_KEYS = GRAD_INPUTS[1:] + ("dt_softplus", "dt_limit", "shift")
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _shape(batch: int, L: int, H: int, P: int, G: int, N: int, Q: int):
    return pytest.param(dict(batch=batch, L=L, H=H, P=P, G=G, N=N), Q, id=f"B{batch}_L{L}_H{H}_P{P}_G{G}_N{N}_Q{Q}")


SHAPES = [
    _shape(1, 1, 2, 4, 1, 4, 64),
    _shape(2, 2, 2, 4, 1, 4, 64),
    _shape(2, 7, 4, 3, 2, 5, 4),
    _shape(2, 63, 4, 8, 1, 8, 64),
    _shape(1, 64, 2, 8, 1, 16, 64),
    _shape(2, 65, 4, 8, 2, 8, 64),
    _shape(1, 196, 4, 16, 1, 16, 256),
    _shape(2, 197, 3, 8, 3, 8, 64),
    _shape(1, 257, 4, 8, 2, 8, 64),
    _shape(1, 577, 2, 8, 1, 8, 128),
    _shape(2, 600, 4, 8, 2, 8, 64),
    _shape(1, 1025, 2, 4, 1, 8, 256),
]
DIAGS = ["data", "head", None]


def _matrix_kwargs(kw: dict) -> dict:
    return {k: kw[k] for k in MATRIX_KEYS}


def _grads(fn, kw: dict, grad_out: torch.Tensor, **extra) -> dict:
    """Gradients of <fn(**kw), grad_out> with respect to every tensor input."""
    y = fn(**kw, **extra)
    names = [n for n in GRAD_INPUTS if kw[n] is not None]
    grads = torch.autograd.grad(y, [kw[n] for n in names], grad_out.to(y.dtype))
    return dict(zip(names, grads))


@pytest.mark.parametrize(
    "L, N, chunk_size, expected",
    [(196, 64, 256, 32), (1025, 64, 256, 32), (4096, 64, 256, 64), (16384, 64, 256, 128), (65536, 64, 256, 128),
     (10**6, 128, 256, 256), (196, 64, 8, 8), (40, 8, 256, 16), (1, 4, 256, 16)],
)
def test_reference_chunk(L, N, chunk_size, expected):
    """On a CPU the power of two nearest (L N)^(1/3), at least 16, at most the chunk_size asked for;
    elsewhere the chunk_size itself (FLOPs on the meta device are counted at the kernels' chunk length)."""
    assert reference_chunk(L, N, chunk_size, torch.device("cpu")) == expected
    assert reference_chunk(L, N, chunk_size, torch.device("meta")) == chunk_size


@pytest.mark.parametrize("chunk_size, expected", [(256, 32), (None, 32), (8, 8)])
def test_dispatcher_runs_reference_with_short_chunks(mix_inputs, spy_chunk_size, chunk_size, expected):
    """`quasiseparable_mix` hands the reference `reference_chunk(L, N, chunk_size)`: 32 at ViT-B's
    L = 196, N = 64 unless a shorter chunk is asked for; the result is still the naive one."""
    seen = spy_chunk_size(reference_module, "quasiseparable_mix_reference")
    kw = mix_inputs(1, 196, 2, 4, 1, 64)
    y = quasiseparable_mix(**kw, chunk_size=chunk_size, backend="reference")
    assert seen == [expected]
    torch.testing.assert_close(y, quasiseparable_mix_naive(**kw), **TOL[torch.float32])


@pytest.mark.parametrize("shift", [True, False], ids=["shift", "noshift"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("dims, Q", SHAPES)
def test_reference_matches_naive(mix_inputs, dims, Q, dtype, shift):
    diag = DIAGS[(dims["L"] + shift) % 3]
    kw = mix_inputs(**dims, dtype=dtype, diag=diag, shift=shift, seed=dims["L"])
    y_naive = quasiseparable_mix_naive(**kw)
    torch.testing.assert_close(quasiseparable_mix_reference(**kw, chunk_size=Q), y_naive, **TOL[dtype])


@pytest.mark.parametrize("dims, Q", SHAPES[:-1])
def test_scan_matches_naive(mix_inputs, dims, Q):
    kw = mix_inputs(**dims, dtype=torch.float64, diag=DIAGS[dims["L"] % 3], seed=dims["L"] + 1)
    torch.testing.assert_close(quasiseparable_mix_scan(**kw), quasiseparable_mix_naive(**kw), **TOL[torch.float64])


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 50, 1000])
def test_reference_independent_of_chunk_size(mix_inputs, chunk_size):
    kw = mix_inputs(2, 50, 4, 4, 2, 4, dtype=torch.float64)
    torch.testing.assert_close(
        quasiseparable_mix_reference(**kw, chunk_size=chunk_size), quasiseparable_mix_naive(**kw), **TOL[torch.float64]
    )


@pytest.mark.parametrize(
    "dt_softplus, dt_bias, dt_limit",
    [
        (True, True, (0.0, math.inf)),
        (True, True, (0.005, 0.05)),
        (True, False, (0.0, 0.03)),
        (False, True, (0.0, math.inf)),
        (False, False, (0.004, math.inf)),
    ],
    ids=["softplus_bias", "softplus_bias_limit", "softplus_limit", "bias", "plain_min"],
)
def test_dt_activation(mix_inputs, dt_softplus, dt_bias, dt_limit):
    """All forms apply dt = clamp(softplus?(dt + dt_bias), *dt_limit), checked against pre-activated dt."""
    kw = mix_inputs(2, 70, 4, 4, 2, 4, dtype=torch.float64, dt_softplus=dt_softplus, dt_bias=dt_bias, dt_limit=dt_limit)
    final = {}
    for name in ("dt_fwd", "dt_bwd"):
        dt = kw[name] + (kw["dt_bias"] if dt_bias else 0.0)
        final[name] = (torch.log1p(torch.exp(dt)) if dt_softplus else dt).clamp(*dt_limit)
    plain = {**kw, **final, "dt_bias": None, "dt_softplus": False, "dt_limit": (0.0, math.inf)}
    y_expected = quasiseparable_mix_naive(**plain)
    if dt_limit != (0.0, math.inf):
        unclamped = {**kw, "dt_limit": (0.0, math.inf)}
        assert (quasiseparable_mix_naive(**unclamped) - y_expected).abs().max() > 1e-4, "the limit must matter here"
    y_ref = quasiseparable_mix_reference(**kw, chunk_size=16)
    for y in (quasiseparable_mix_naive(**kw), quasiseparable_mix_scan(**kw), y_ref):
        torch.testing.assert_close(y, y_expected, **TOL[torch.float64])


@pytest.mark.parametrize("dt_limit", [(0.0, math.inf), (0.5, 12.0)], ids=["nolimit", "limit"])
def test_activate_dt_formula(dt_limit):
    """activate_dt = clamp(log(1 + exp(dt + bias))) over both sides of softplus's linear cutoff (20)."""
    dt = torch.linspace(-30.0, 30.0, 241, dtype=torch.float64).reshape(1, -1, 1).expand(2, -1, 3)
    bias = torch.tensor([-1.0, 0.0, 2.5])
    expected = torch.log1p(torch.exp(dt + bias.double())).clamp(*dt_limit)
    out = activate_dt(dt, bias, True, dt_limit, torch.float64)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=0)
    torch.testing.assert_close(activate_dt(dt, None, False, dt_limit, torch.float32), dt.float().clamp(*dt_limit))


def test_strong_decay_is_finite_and_exact(mix_inputs, cast_inputs):
    """Per-token decays down to exp(-400): no inf/NaN in y or its gradients, still equal to naive."""
    kw = mix_inputs(1, 130, 4, 4, 1, 4, dt_softplus=False, dt_bias=False)
    kw["A"] = kw["A"] * 1000.0
    kw = cast_inputs(kw, requires_grad=True)
    grad_out = torch.randn(kw["x"].shape, generator=torch.Generator().manual_seed(1))
    g_ref = _grads(quasiseparable_mix_reference, kw, grad_out, chunk_size=64)
    g_naive = _grads(quasiseparable_mix_naive, kw, grad_out)
    y_ref = quasiseparable_mix_reference(**kw, chunk_size=64)
    torch.testing.assert_close(y_ref, quasiseparable_mix_naive(**kw), **TOL[torch.float32])
    for name, g in g_ref.items():
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, g_naive[name], rtol=1e-4, atol=1e-5 * max(1.0, g_naive[name].abs().max().item()))


@pytest.mark.parametrize(
    "dims, Q, diag, shift",
    [
        pytest.param(dict(batch=1, L=5, H=2, P=2, G=1, N=3), 2, "data", True, id="B1_L5_H2_G1_Q2_Ddata_shift"),
        pytest.param(dict(batch=2, L=4, H=2, P=1, G=2, N=2), 3, "head", True, id="B2_L4_H2_G2_Q3_Dhead_shift"),
        pytest.param(dict(batch=1, L=3, H=2, P=2, G=1, N=2), 2, "data", False, id="B1_L3_H2_G1_Q2_Ddata_noshift"),
    ],
)
def test_reference_gradcheck(mix_inputs, cast_inputs, dims, Q, diag, shift):
    kw = mix_inputs(**dims, dtype=torch.float64, diag=diag, shift=shift, dt_limit=(0.0, 10.0))
    kw = cast_inputs(kw, requires_grad=True)
    names = [n for n in GRAD_INPUTS if kw[n] is not None]

    def fn(*tensors):
        return quasiseparable_mix_reference(**{**kw, **dict(zip(names, tensors))}, chunk_size=Q)

    assert torch.autograd.gradcheck(fn, [kw[n] for n in names])


@pytest.mark.parametrize(
    "dims, Q, diag",
    [
        pytest.param(dict(batch=2, L=65, H=4, P=4, G=2, N=8), 16, "head", id="B2_L65_H4_G2_Q16_Dhead"),
        pytest.param(dict(batch=1, L=197, H=2, P=8, G=1, N=8), 64, "data", id="B1_L197_H2_G1_Q64_Ddata"),
    ],
)
def test_reference_grads_match_naive(mix_inputs, cast_inputs, dims, Q, diag):
    kw = cast_inputs(mix_inputs(**dims, diag=diag), requires_grad=True)
    grad_out = torch.randn(kw["x"].shape, generator=torch.Generator().manual_seed(2))
    g_ref = _grads(quasiseparable_mix_reference, kw, grad_out, chunk_size=Q)
    g_naive = _grads(quasiseparable_mix_naive, kw, grad_out)
    assert g_ref.keys() == set(GRAD_INPUTS)
    for name, g in g_ref.items():
        scale = g_naive[name].abs().max().item()
        torch.testing.assert_close(
            g, g_naive[name], rtol=1e-4, atol=1e-5 * max(1.0, scale), msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_reference_low_precision(mix_inputs, cast_inputs, dtype):
    """|ref(low) - ref(fp32)| <= 2 |naive(low) - ref(fp32)| + one rounding, for y and every gradient."""
    base = mix_inputs(2, 150, 4, 8, 2, 8, dtype=dtype, diag="data")
    grad_out = torch.randn(base["x"].shape, generator=torch.Generator().manual_seed(3))
    low = cast_inputs(base, requires_grad=True)
    high = cast_inputs(base, dtype=torch.float32, requires_grad=True)
    low_naive = cast_inputs(base, requires_grad=True)
    out = {"y": quasiseparable_mix_reference(**low, chunk_size=64)}
    out_ref = {"y": quasiseparable_mix_reference(**high, chunk_size=64)}
    out_pt = {"y": quasiseparable_mix_naive(**low_naive)}
    assert out["y"].dtype == dtype
    out.update(_grads(quasiseparable_mix_reference, low, grad_out, chunk_size=64))
    out_ref.update(_grads(quasiseparable_mix_reference, high, grad_out, chunk_size=64))
    out_pt.update(_grads(quasiseparable_mix_naive, low_naive, grad_out))
    for name, ref in out_ref.items():
        err = (out[name].float() - ref).abs().max().item()
        pt_err = (out_pt[name].float() - ref).abs().max().item()
        atol = torch.finfo(dtype).eps * ref.abs().max().item()
        assert err <= 2 * pt_err + atol, f"{name}: {err} > 2 * {pt_err} + {atol}"


@pytest.mark.parametrize("shift", [True, False], ids=["shift", "noshift"])
@pytest.mark.parametrize("L", [1, 37])
def test_official_construction(mix_inputs, L, shift):
    """Hydra's official recipe, written out with the causal semiseparable matrix:
    batch [x; flip(x)] through one causal scan, roll by one and zero row 0 (shift),
    flip the second half back, add the halves and D * x."""
    kw = mix_inputs(2, L, 4, 3, 2, 5, dtype=torch.float64, diag="data", shift=shift)
    x, batch = kw["x"], kw["x"].shape[0]
    dt_f, dt_b = (activate_dt(kw[n], kw["dt_bias"], True, kw["dt_limit"], torch.float64) for n in ("dt_fwd", "dt_bwd"))
    xx = torch.cat([x, x.flip(1)])
    ss = semiseparable_matrix(
        torch.cat([dt_f, dt_b.flip(1)]),
        kw["A"],
        torch.cat([kw["B_fwd"], kw["B_bwd"].flip(1)]),
        torch.cat([kw["C_fwd"], kw["C_bwd"].flip(1)]),
    )
    y = torch.einsum("bhij,bjhp->bihp", ss, xx)
    if shift:
        y = torch.roll(y, 1, dims=1)
        y[:, 0] = 0
    expected = y[:batch] + y[batch:].flip(1) + kw["D"][..., None] * x
    for backend in ("naive", "reference"):
        y = quasiseparable_mix(**kw, chunk_size=8, backend=backend)
        torch.testing.assert_close(y, expected, **TOL[torch.float64])
    torch.testing.assert_close(quasiseparable_mix_scan(**kw), expected, **TOL[torch.float64])


def _perturbed(kw: dict, names: tuple[str, ...], seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {**kw, **{n: kw[n] + 0.3 * torch.randn(kw[n].shape, generator=gen, dtype=kw[n].dtype) for n in names}}


@pytest.mark.parametrize(
    "names, changes",
    [
        (("dt_fwd", "B_fwd", "C_fwd"), "lower"),
        (("dt_bwd", "B_bwd", "C_bwd"), "upper"),
        (("D",), "diag"),
        (("A",), "lower upper"),
        (("dt_bias",), "lower upper"),
    ],
    ids=["forward", "backward", "D", "A", "dt_bias"],
)
def test_matrix_structure(mix_inputs, names, changes):
    """With the shift: strictly-lower part <- forward parameters only, strictly-upper <-
    backward only, diagonal <- D only (A and dt_bias are shared by both triangles)."""
    kw = _matrix_kwargs(mix_inputs(2, 20, 4, 1, 2, 4, dtype=torch.float64, diag="data"))
    before = quasiseparable_matrix(**kw)
    after = quasiseparable_matrix(**_perturbed(kw, names, seed=5))
    parts = {
        "lower": lambda m: m.tril(-1),
        "upper": lambda m: m.triu(1),
        "diag": lambda m: m.diagonal(dim1=-2, dim2=-1),
    }
    for part, take in parts.items():
        if part in changes:
            assert (take(after) - take(before)).abs().max() > 1e-3, f"{part} should change with {names}"
        else:
            assert torch.equal(take(after), take(before)), f"{part} must not depend on {names}"


def test_matrix_ignores_entries_the_shift_skips(mix_inputs):
    """QS[i,j] uses C_f[i-1], B_f[j], dt_f[j..i-1] (i > j) and C_b[i+1], B_b[j], dt_b[i+1..j] (i < j):
    the last token's forward and the first token's backward B, C, dt never enter."""
    kw = _matrix_kwargs(mix_inputs(2, 20, 4, 1, 2, 4, dtype=torch.float64, diag="data"))
    changed = dict(kw)
    for name, pos in (("dt_fwd", -1), ("B_fwd", -1), ("C_fwd", -1), ("dt_bwd", 0), ("B_bwd", 0), ("C_bwd", 0)):
        changed[name] = kw[name].clone()
        changed[name][:, pos] += 1.0
    assert torch.equal(quasiseparable_matrix(**changed), quasiseparable_matrix(**kw))
    unshifted = quasiseparable_matrix(**{**changed, "shift": False})
    assert not torch.equal(unshifted, quasiseparable_matrix(**{**kw, "shift": False})), "they matter without the shift"


def test_matrix_shift_moves_rows(mix_inputs):
    """QS[i, j] = SS_f[i-1, j] for i > j and SS_b[i+1, j] for i < j, where SS_f is the causal
    matrix and SS_b the anti-causal one (the causal matrix of the flipped backward inputs,
    flipped back); without the shift both triangles and their diagonals are added to D."""
    kw = _matrix_kwargs(mix_inputs(2, 24, 4, 1, 2, 4, dtype=torch.float64, diag="head"))
    dt_f, dt_b = (activate_dt(kw[n], kw["dt_bias"], True, kw["dt_limit"], torch.float64) for n in ("dt_fwd", "dt_bwd"))
    ss_f = semiseparable_matrix(dt_f, kw["A"], kw["B_fwd"], kw["C_fwd"])
    ss_b = semiseparable_matrix(dt_b.flip(1), kw["A"], kw["B_bwd"].flip(1), kw["C_bwd"].flip(1)).flip(-1, -2)
    qs = quasiseparable_matrix(**kw)
    torch.testing.assert_close(qs.tril(-1)[..., 1:, :], ss_f[..., :-1, :], rtol=0, atol=1e-14)
    torch.testing.assert_close(qs.triu(1)[..., :-1, :], ss_b[..., 1:, :], rtol=0, atol=1e-14)
    diag = kw["D"][None, :, None].expand(2, 4, 24)
    torch.testing.assert_close(qs.diagonal(dim1=-2, dim2=-1), diag)
    qs_add = quasiseparable_matrix(**{**kw, "shift": False})
    torch.testing.assert_close(qs_add, ss_f + ss_b + torch.diag_embed(diag), rtol=0, atol=1e-14)


def _spy_backends(monkeypatch) -> list[tuple[str, int | None]]:
    """Records (backend, chunk_size) of every call that reaches naive or reference."""
    calls: list[tuple[str, int | None]] = []
    for module, fn_name, label in ((naive_module, "quasiseparable_mix_naive", "naive"),
                                   (reference_module, "quasiseparable_mix_reference", "reference")):
        original = getattr(module, fn_name)

        def spy(*args, _original=original, _label=label, **kwargs):
            calls.append((_label, kwargs.get("chunk_size")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, fn_name, spy)
    return calls


@pytest.fixture
def clean_backend(monkeypatch):
    """No process default and no environment variable; restored afterwards."""
    monkeypatch.delenv("HYDRA_VISION_BACKEND", raising=False)
    set_default_backend(None)
    yield
    set_default_backend(None)


def test_backend_explicit_argument(mix_inputs, clean_backend):
    kw = mix_inputs(2, 40, 4, 4, 2, 4)
    assert torch.equal(quasiseparable_mix(**kw, backend="naive"), quasiseparable_mix_naive(**kw))
    y_ref = quasiseparable_mix_reference(**kw, chunk_size=16)
    assert torch.equal(quasiseparable_mix(**kw, chunk_size=16, backend="reference"), y_ref)



def test_backend_environment_and_default(mix_inputs, monkeypatch, clean_backend):
    kw = mix_inputs(1, 8, 2, 2, 1, 2)
    calls = _spy_backends(monkeypatch)
    quasiseparable_mix(**kw, chunk_size=4)
    assert calls == [("reference", 4)], "auto on CPU must run the reference, with the chunk size"
    monkeypatch.setenv("HYDRA_VISION_BACKEND", "naive")
    assert get_default_backend() == "naive"
    quasiseparable_mix(**kw)
    set_default_backend("reference")
    quasiseparable_mix(**kw)
    set_default_backend(None)
    quasiseparable_mix(**kw)
    quasiseparable_mix(**kw, backend="reference")
    names = [name for name, _ in calls]
    assert names == ["reference", "naive", "reference", "naive", "reference"]


def test_backend_unknown_name(mix_inputs, monkeypatch, clean_backend):
    kw = mix_inputs(1, 8, 2, 2, 1, 2)
    with pytest.raises(ValueError, match="unknown kernel backend 'fast'"):
        quasiseparable_mix(**kw, backend="fast")
    with pytest.raises(ValueError, match="unknown kernel backend 'cuda'"):
        set_default_backend("cuda")
    monkeypatch.setenv("HYDRA_VISION_BACKEND", "bogus")
    with pytest.raises(ValueError, match="unknown kernel backend 'bogus'"):
        quasiseparable_mix(**kw)


def test_backend_triton_needs_cuda_or_interpreter(mix_inputs, monkeypatch, clean_backend):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        quasiseparable_mix(**mix_inputs(1, 8, 2, 2, 1, 2), backend="triton")


def _bad(name: str, shape: tuple[int, ...]):
    return pytest.param(name, shape, id=f"{name}_{'x'.join(map(str, shape))}")


@pytest.mark.parametrize(
    "name, shape",
    [
        _bad("x", (2, 9, 4, 3)),
        _bad("x", (2, 8, 4)),
        _bad("dt_bwd", (2, 8, 3)),
        _bad("A", (5,)),
        _bad("C_fwd", (2, 8, 1, 5)),
        _bad("B_bwd", (2, 8, 2, 4)),
        _bad("C_bwd", (1, 8, 2, 5)),
        _bad("D", (2, 7, 4)),
        _bad("D", (3,)),
        _bad("dt_bias", (4, 1)),
    ],
)
@pytest.mark.parametrize("backend", ["naive", "reference"])
def test_bad_shapes(mix_inputs, name, shape, backend):
    kw = mix_inputs(2, 8, 4, 3, 2, 5)
    kw[name] = torch.zeros(shape)
    with pytest.raises(ValueError, match=rf"^{name} has shape \({', '.join(map(str, shape))},?\), expected \("):
        quasiseparable_mix(**kw, backend=backend)


def test_bad_inputs(mix_inputs):
    kw = mix_inputs(2, 8, 4, 3, 2, 5)
    cases = [
        ({"B_fwd": torch.zeros(2, 8, 3, 5)}, ValueError, "ngroups G = 3"),
        ({"x": torch.zeros(2, 8, 4, 3, dtype=torch.int64)}, TypeError, "x must be a floating-point tensor"),
        ({"A": [1.0] * 4}, TypeError, "A must be a torch.Tensor"),
        ({"dt_limit": (0.1, 0.01)}, ValueError, "dt_limit"),
        ({"x": torch.zeros(2, 0, 4, 3), "dt_fwd": torch.zeros(2, 0, 4)}, ValueError, "sequence is empty"),
        ({"x": torch.zeros(2, 8, 4, 3, device="meta")}, ValueError, "x is on meta"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            quasiseparable_mix_reference(**{**kw, **change})
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        quasiseparable_mix_reference(**kw, chunk_size=0)
    with pytest.raises(ValueError, match=r"^B_bwd has shape"):
        quasiseparable_matrix(**{**_matrix_kwargs(kw), "B_bwd": torch.zeros(2, 8, 2, 4)})


def test_reference_on_meta_device(mix_inputs):
    kw = mix_inputs(2, 70, 4, 4, 2, 4, dtype=torch.bfloat16)
    kw = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    y = quasiseparable_mix_reference(**kw, chunk_size=32)
    assert y.device.type == "meta" and y.shape == (2, 70, 4, 4) and y.dtype == torch.bfloat16


def test_reference_traces_without_graph_breaks(mix_inputs):
    """torch.compile(fullgraph=True) and torch.export both capture the whole reference."""
    kw = mix_inputs(2, 70, 4, 4, 2, 4)
    tensors = {k: v for k, v in kw.items() if isinstance(v, torch.Tensor)}
    options = {k: v for k, v in kw.items() if not isinstance(v, torch.Tensor)}

    class Mix(torch.nn.Module):
        def forward(self, x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias):
            return quasiseparable_mix_reference(
                x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, **options, chunk_size=32
            )

    expected = Mix()(**tensors)
    torch._dynamo.reset()
    compiled = torch.compile(Mix(), fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(**tensors), expected, rtol=1e-6, atol=1e-6)
    exported = torch.export.export(Mix(), (), tensors)
    torch.testing.assert_close(exported.module()(**tensors), expected, rtol=1e-6, atol=1e-6)
