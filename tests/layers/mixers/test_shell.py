"""The shared shell: every mixer's parameters (names, shapes, Hydra's order) and the conv features it hands on."""
import pytest
import torch
import torch.nn.functional as F

from ._helpers import DIM, L, N, NAMES, make, tokens

D_INNER, H, G = 2 * DIM, 4, 2
GN = G * N
# name -> (conv features, raw features, the mixer's own parameters and their shapes)
OWN = {
    "quasiseparable": (4 * GN, 2 * H, {"dt_bias": (H,), "A_log": (H,), "D": (H,), "fc_D.weight": (H, D_INNER)}),
    "add": (4 * GN, 2 * H, {"dt_bias": (H,), "A_log": (H,)}),
    "add_shift": (4 * GN, 2 * H, {"dt_bias": (H,), "A_log": (H,)}),
    "add_diag": (4 * GN, 2 * H, {"dt_bias": (H,), "A_log": (H,), "D": (H,), "fc_D.weight": (H, D_INNER)}),
    "mult": (4 * GN, 2 * H, {"dt_bias": (H,), "A_log": (H,), "D": (H,)}),
    "concat": (4 * GN, H, {"dt_bias": (H,), "A_log": (H,), "D": (H,)}),
    "causal": (2 * GN, H, {"dt_bias": (H,), "A_log": (H,), "D": (H,)}),
    "attention": (2 * GN, 0, {}),
    "linear_attention": (2 * GN, 0, {}),
    "dense": (0, 0, {"D": (H,), "weight": (G, L, L)}),
    "toeplitz_dd": (2 * G, 0, {"D": (H,)}),
    "toeplitz_di": (0, 0, {"D": (H,), "kernel": (G, 2 * L - 1)}),
    "vandermonde_dd": (2 * GN, 0, {"D": (H,)}),
    "vandermonde_di": (0, 0, {"D": (H,), "q": (L, G, N), "k": (L, G, N)}),
    "cauchy_dd": (2 * GN, 0, {"D": (H,)}),
    "cauchy_di": (0, 0, {"D": (H,), "q": (L, G, N), "k": (L, G, N)}),
    "low_rank_dd": (2 * GN, 0, {"D": (H,)}),
    "low_rank_di": (0, 0, {"D": (H,), "q": (L, G, N), "k": (L, G, N)}),
    "monarch": (0, 0, {"D": (H,), "left": (G, 4, 4, 4), "right": (G, 4, 4, 4)}),
}


def test_the_table_covers_the_registry():
    assert set(OWN) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_the_shell_plus_the_mixers_own_parameters(name):
    conv, raw, own = OWN[name]
    shell = {
        "in_proj.weight": (2 * D_INNER + conv + raw, DIM),
        "conv1d.weight": (D_INNER + conv, 1, 3),
        "conv1d.bias": (D_INNER + conv,),
        "norm.weight": (D_INNER,),
        "out_proj.weight": (DIM, D_INNER),
    }
    assert {k: tuple(v.shape) for k, v in make(name).state_dict().items()} == dict(shell, **own)


@pytest.mark.parametrize("name", ["quasiseparable", "add_diag"])
def test_parameter_order_is_hydras(name):
    """Optimizer states are saved by position: the order of earlier Hydra checkpoints (fc_D before norm)."""
    assert [n for n, _ in make(name).named_parameters()] == [
        "dt_bias", "A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "fc_D.weight", "norm.weight",
        "out_proj.weight"]


@pytest.mark.parametrize("name, activated", [("quasiseparable", True), ("causal", True), ("low_rank_dd", True),
                                             ("cauchy_dd", False), ("toeplitz_dd", False), ("attention", False)])
def test_features_are_the_conv_output_activated_or_raw(name, activated):
    mixer = make(name)
    u = tokens()
    conv, raw, _ = OWN[name]
    z, xf, r = (u @ mixer.in_proj.weight.T).split([D_INNER, D_INNER + conv, raw], dim=-1)
    xf = F.conv1d(xf.transpose(1, 2), mixer.conv1d.weight, mixer.conv1d.bias, padding=2 if name == "causal" else 1,
                  groups=D_INNER + conv)[..., :L].transpose(1, 2)
    z_, x_, f_, r_ = mixer.features(u)
    torch.testing.assert_close((z_, r_), (z, r))
    torch.testing.assert_close(x_, F.silu(xf[..., :D_INNER]).unflatten(-1, (H, 16)))
    torch.testing.assert_close(f_, F.silu(xf[..., D_INNER:]) if activated else xf[..., D_INNER:])


def test_hydra_values_and_features_are_views_of_one_activation():
    _, x, f, _ = make("quasiseparable").features(tokens())
    assert x.untyped_storage().data_ptr() == f.untyped_storage().data_ptr()

