"""The Hydra mixer against a re-implementation of the official Hydra layer's forward.

The official layer (HYDRA.md) runs Mamba-2's causal scan once on 2B sequences (the backward
half flipped), rolls the result by one, zeroes position 0, flips the backward half back and
adds x * (fc_D(x) + D). `official_forward` writes that out with our naive causal matrix and
reads the weights from a state dict built from HYDRA.md's names and shapes, which loads
into `Hydra` unchanged.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import hydra_vision.layers.hydra_mixer as hydra_mixer
from hydra_vision.kernels.quasiseparable.naive import semiseparable_matrix
from hydra_vision.layers import Hydra

CONFIGS = {
    "H4_G1_N8": dict(dim=32, d_state=8, headdim=16, ngroups=1),
    "H4_G2_N4": dict(dim=32, d_state=4, headdim=16, ngroups=2),
    "H2_G1_N16_k3": dict(dim=16, d_state=16, headdim=16, ngroups=1, d_conv=3),
}


def official_state_dict(dim, d_state, headdim, ngroups, d_conv=7, expand=2, dtype=torch.float64):
    """Random weights with the official layer's parameter names and shapes (HYDRA.md)."""
    d_inner = expand * dim
    H, GN = d_inner // headdim, ngroups * d_state
    conv_dim = d_inner + 4 * GN
    g = torch.Generator().manual_seed(1)

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=dtype) * std

    dt = torch.exp(torch.rand(H, generator=g, dtype=dtype) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return {
        "in_proj.weight": randn(2 * d_inner + 4 * GN + 2 * H, dim, std=dim ** -0.5),
        "conv1d.weight": randn(conv_dim, 1, d_conv, std=0.4),
        "conv1d.bias": randn(conv_dim, std=0.1),
        "dt_bias": dt + torch.log(-torch.expm1(-dt)),
        "A_log": torch.rand(H, generator=g, dtype=dtype) * 2,
        "D": randn(H),
        "fc_D.weight": randn(H, d_inner, std=d_inner ** -0.5),
        "norm.weight": 1 + randn(d_inner, std=0.2),
        "out_proj.weight": randn(dim, d_inner, std=d_inner ** -0.5),
    }


def official_forward(sd, u, d_state, headdim, ngroups):
    """The official Hydra forward in plain PyTorch (two causal scans on a doubled batch)."""
    batch, L, _ = u.shape
    d_inner, H, GN = sd["norm.weight"].shape[0], sd["A_log"].shape[0], ngroups * d_state
    z, xBC, dt = torch.split(u @ sd["in_proj.weight"].T, [d_inner, d_inner + 4 * GN, 2 * H], dim=-1)
    dt = torch.cat((dt[:, :, :H], torch.flip(dt[:, :, H:], (1,))), dim=0)
    dt = F.softplus(dt + sd["dt_bias"])
    k = sd["conv1d.weight"].shape[-1]
    xBC = F.conv1d(xBC.transpose(1, 2), sd["conv1d.weight"], sd["conv1d.bias"], padding=k // 2, groups=xBC.shape[-1])
    xBC = F.silu(xBC).transpose(1, 2)
    x, BC = torch.split(xBC, [d_inner, 4 * GN], dim=-1)
    x_og = x
    x = torch.cat((x, torch.flip(x, (1,))), dim=0)
    BC = torch.cat((BC[:, :, :2 * GN], torch.flip(BC[:, :, 2 * GN:], (1,))), dim=0)
    B, C = torch.split(BC, [GN, GN], dim=-1)
    A = -torch.exp(sd["A_log"])
    ss = semiseparable_matrix(dt, A, B.unflatten(-1, (ngroups, d_state)), C.unflatten(-1, (ngroups, d_state)))
    y = torch.einsum("bhij,bjhp->bihp", ss, x.unflatten(-1, (H, headdim))).flatten(2)
    y = torch.roll(y, shifts=1, dims=1)
    y[:, 0, :] = 0.0
    diag = F.linear(x_og, sd["fc_D.weight"], bias=sd["D"]).repeat_interleave(headdim, dim=-1)
    y = y[:batch] + torch.flip(y[batch:], (1,)) + x_og * diag
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5) * sd["norm.weight"] * F.silu(z)
    return y @ sd["out_proj.weight"].T


def _hydra(cfg, dtype=torch.float64, **kwargs):
    return Hydra(**cfg, dtype=dtype, **kwargs)


@pytest.mark.parametrize("L", [1, 13, 40], ids=lambda L: f"L{L}")
@pytest.mark.parametrize("backend", ["naive", "reference"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_official_forward_fp64(name, backend, L):
    cfg = CONFIGS[name]
    sd = official_state_dict(**cfg)
    mixer = _hydra(cfg, backend=backend, chunk_size=16)
    mixer.load_state_dict(sd, strict=True)
    u = torch.randn(2, L, cfg["dim"], dtype=torch.float64, generator=torch.Generator().manual_seed(L))
    expected = official_forward(sd, u, cfg["d_state"], cfg["headdim"], cfg["ngroups"])
    torch.testing.assert_close(mixer(u), expected, rtol=1e-9, atol=1e-10)


def test_matches_official_forward_fp32_default_chunk():
    cfg = CONFIGS["H4_G1_N8"]
    sd = official_state_dict(**cfg)
    mixer = _hydra(cfg, dtype=torch.float32, backend="reference")
    mixer.load_state_dict({k: v.float() for k, v in sd.items()})
    u = torch.randn(3, 197, cfg["dim"], dtype=torch.float64)
    expected = official_forward(sd, u, cfg["d_state"], cfg["headdim"], cfg["ngroups"])
    torch.testing.assert_close(mixer(u.float()).double(), expected, rtol=1e-4, atol=1e-5)


def test_state_dict_names_shapes_and_defaults():
    mixer = Hydra(768, device="meta")
    assert {k: tuple(v.shape) for k, v in mixer.state_dict().items()} == {
        k: tuple(v.shape) for k, v in official_state_dict(768, 64, 64, 1, dtype=torch.float32).items()}
    assert (mixer.d_inner, mixer.nheads, mixer.headdim, mixer.d_state, mixer.ngroups) == (1536, 24, 64, 64, 1)
    assert mixer.conv1d.kernel_size == (7,) and mixer.conv1d.padding == (3,) and mixer.conv1d.bias is not None
    assert mixer.in_proj.bias is None and mixer.out_proj.bias is None and mixer.fc_D.bias is None
    assert mixer.chunk_size == "auto" and mixer.dt_limit == (0.0, math.inf) and mixer.norm.eps == 1e-5


def test_init():
    torch.manual_seed(0)
    mixer = Hydra(512, headdim=8, dt_min=0.002, dt_max=0.05)
    assert all(p.dim() == 1 for p in (mixer.A_log, mixer.dt_bias, mixer.D))
    assert torch.equal(mixer.A_log, torch.zeros(128)) and torch.equal(mixer.D, torch.ones(128))
    dt = F.softplus(mixer.dt_bias.double())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    # log-uniform: log dt spread over the whole interval (128 draws)
    log_dt = (dt.log() - math.log(0.002)) / (math.log(0.05) - math.log(0.002))
    assert log_dt.min() < 0.1 and log_dt.max() > 0.9 and 0.35 < log_dt.mean() < 0.65
    floored = F.softplus(Hydra(64, headdim=8, dt_min=1e-6, dt_max=2e-6, dt_init_floor=1e-4).dt_bias)
    torch.testing.assert_close(floored, torch.full_like(floored, 1e-4))


def test_kernel_gets_raw_dt_and_views_of_the_conv_output(monkeypatch):
    original = hydra_mixer.quasiseparable_mix
    calls = []

    def recording_mix(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(hydra_mixer, "quasiseparable_mix", recording_mix)
    cfg = CONFIGS["H4_G2_N4"]
    mixer = _hydra(cfg, dtype=torch.float32, backend="reference", chunk_size=8)
    mixer(torch.randn(2, 10, cfg["dim"]))
    (x, dt_f, dt_b, A, B_f, C_f, B_b, C_b, D), kwargs = calls[0]
    assert kwargs["dt_softplus"] is True and kwargs["dt_bias"] is mixer.dt_bias
    assert kwargs["chunk_size"] == 8 and kwargs["backend"] == "reference"
    conv_out = {t.untyped_storage().data_ptr() for t in (x, B_f, C_f, B_b, C_b)}
    assert len(conv_out) == 1, "x, B, C must be views of one conv output"
    assert dt_f.untyped_storage().data_ptr() == dt_b.untyped_storage().data_ptr()
    assert not x.is_contiguous()
    assert (dt_f.shape, B_f.shape, D.shape) == ((2, 10, 4), (2, 10, 2, 4), (2, 10, 4))
    assert A.dtype == torch.float32
    torch.testing.assert_close(A, -torch.exp(mixer.A_log))


def test_every_parameter_gets_a_gradient():
    cfg = CONFIGS["H4_G2_N4"]
    mixer = _hydra(cfg, dtype=torch.float32)
    mixer(torch.randn(2, 9, cfg["dim"])).square().sum().backward()
    missing = [n for n, p in mixer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_bf16_in_bf16_out_close_to_fp32():
    torch.manual_seed(0)
    cfg = CONFIGS["H4_G1_N8"]
    mixer = _hydra(cfg, dtype=torch.float32)
    u = torch.randn(2, 20, cfg["dim"])
    ref = mixer(u)
    out = mixer.to(torch.bfloat16)(u.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_scripted_and_fx_traced_match_eager():
    from timm.layers import get_notrace_functions
    from torch.fx import Tracer, GraphModule

    cfg = CONFIGS["H4_G1_N8"]
    mixer = _hydra(cfg, dtype=torch.float32).eval()
    u = torch.randn(2, 11, cfg["dim"])
    expected = mixer(u)
    torch.testing.assert_close(torch.jit.script(mixer)(u), expected)
    graph = Tracer(autowrap_functions=tuple(get_notrace_functions())).trace(mixer)
    torch.testing.assert_close(GraphModule(mixer, graph)(u), expected)


def test_meta_device():
    mixer = Hydra(64, headdim=32, device="meta")
    assert all(t.device.type == "meta" for t in mixer.state_dict().values())
    assert mixer(torch.empty(2, 5, 64, device="meta")).shape == (2, 5, 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=48, headdim=64), "not divisible by headdim"),
        (dict(dim=64, headdim=32, ngroups=3), "not divisible by ngroups"),
        (dict(dim=64, headdim=32, d_conv=4), "d_conv must be odd"),
        (dict(dim=64, headdim=32, backend="cuda"), "unknown kernel backend"),
        (dict(dim=64, headdim=32, dt_min=0.1, dt_max=0.01), "dt_min"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Hydra(**kwargs)


def test_wrong_width_names_the_shape():
    with pytest.raises(RuntimeError, match="32"):
        Hydra(32, headdim=16)(torch.randn(1, 4, 24))


def test_the_fused_layer_runs_the_auto_chunk_of_its_length(monkeypatch):
    """chunk_size "auto" (the default) reaches the fused layer as one chunk up to 256 tokens and 64 beyond."""
    specs = []
    monkeypatch.setattr(hydra_mixer, "fused_hydra_layer", lambda zxr, *args: specs.append(args[7]) or zxr)
    mixer = Hydra(64, headdim=32, device="meta")
    width = mixer.in_proj.out_features
    for L in (197, 256, 257, 1025):
        mixer.fused_layer(torch.empty(1, L, width, device="meta"))
    # spec: (d_inner, headdim, ngroups, d_state, causal_conv, dt_limit, shift, chunk_size, eps)
    assert [spec[7] for spec in specs] == [256, 256, 64, 64]
