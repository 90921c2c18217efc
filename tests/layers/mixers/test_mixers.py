"""Every mixer of the registry: shapes, dtypes, gradients, devices, and `mix` = materialised matrix @ values."""
import pytest
import torch

from hydra_vision.layers import Hydra
from hydra_vision.layers.mixers import MIXERS, SHARED_SETTINGS, QuasiseparableSSD, create_mixer

from ._helpers import DATA_INDEPENDENT, DIM, L, NAMES, SETTINGS, apply, make, tokens

LINEAR = [n for n in NAMES if n not in ("quasiseparable", "mult")]


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_every_parameter_gets_a_gradient(name):
    mixer = make(name)
    u = tokens().requires_grad_()
    out = mixer(u)
    assert out.shape == u.shape and out.dtype == u.dtype
    out.square().mean().backward()
    missing = [n for n, p in mixer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert u.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LINEAR)
def test_mix_equals_the_materialised_matrix_times_the_values(name):
    mixer = make(name)
    _, x, f, r = mixer.features(tokens())
    M = mixer.matrix(x, f, r)
    assert M.shape == (2, mixer.nheads, L, L) and M.dtype == torch.float64
    torch.testing.assert_close(mixer.mix(x, f, r), apply(M, x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(mixer.materialize(tokens()), M)


def test_mult_is_the_product_of_the_two_scans_plus_the_skip():
    mixer = make("mult")
    _, x, f, r = mixer.features(tokens())
    M = mixer.matrix(x, f, r)
    assert M.shape == (2, 2, mixer.nheads, L, L)
    expected = apply(M[:, 0], x) * apply(M[:, 1], x) + mixer.D[:, None] * x
    torch.testing.assert_close(mixer.mix(x, f, r), expected, rtol=1e-10, atol=1e-10)


def test_quasiseparable_is_hydra_and_the_shell_reproduces_it():
    hydra = make("quasiseparable")
    assert type(hydra) is Hydra
    shell = QuasiseparableSSD(DIM, **{k: v for k, v in SETTINGS.items() if k != "max_seq_len"}, dtype=torch.float64)
    shell.load_state_dict(hydra.state_dict())
    torch.testing.assert_close(shell(tokens()), hydra(tokens()), rtol=1e-12, atol=1e-12)
    _, x, f, r = shell.features(tokens())
    torch.testing.assert_close(shell.mix(x, f, r), apply(shell.matrix(x, f, r), x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_in_bf16_out(name):
    mixer = make(name, dtype=torch.bfloat16)
    out = mixer(tokens(dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.isfinite().all()


@pytest.mark.parametrize("name", NAMES)
def test_meta_device_then_reset(name):
    mixer = create_mixer(name, DIM, device="meta", **SETTINGS)
    assert all(t.device.type == "meta" for t in mixer.parameters())
    assert mixer(tokens(dtype=torch.float32).to("meta")).shape == (2, L, DIM)
    mixer = mixer.to_empty(device="cpu")
    for module in mixer.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    assert all(torch.isfinite(p).all() for p in mixer.parameters())
    assert mixer(tokens(dtype=torch.float32)).isfinite().all()


@pytest.mark.parametrize("name", DATA_INDEPENDENT)
def test_data_independent_matrix_is_the_same_for_every_input(name):
    mixer = make(name)
    M = mixer.materialize(tokens(seed=1))
    torch.testing.assert_close(mixer.materialize(tokens(seed=2)), M, rtol=0, atol=0)
    torch.testing.assert_close(M[0], M[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in LINEAR if n not in DATA_INDEPENDENT])
def test_data_dependent_matrix_changes_with_the_input(name):
    mixer = make(name)
    assert not torch.allclose(mixer.materialize(tokens(seed=1)), mixer.materialize(tokens(seed=2)))


@pytest.mark.parametrize("name", DATA_INDEPENDENT)
def test_data_independent_mixers_use_the_leading_block_for_shorter_inputs(name):
    mixer = make(name)
    u = tokens()
    torch.testing.assert_close(mixer.materialize(u[:, :L - 5]), mixer.materialize(u)[:, :, :L - 5, :L - 5])
    _, x, f, r = mixer.features(u[:, :L - 5])
    torch.testing.assert_close(mixer.mix(x, f, r), apply(mixer.matrix(x, f, r), x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", DATA_INDEPENDENT)
def test_data_independent_mixers_need_max_seq_len_and_reject_longer_inputs(name):
    with pytest.raises(ValueError, match="needs max_seq_len"):
        create_mixer(name, DIM, **dict(SETTINGS, max_seq_len=None))
    with pytest.raises(ValueError, match=f"built for at most {L} tokens but got {L + 1}"):
        make(name)(tokens(length=L + 1))


def test_registry_names_errors_and_shared_settings():
    assert set(MIXERS) == set(NAMES) and len(NAMES) == 19
    with pytest.raises(ValueError, match="unknown mixer 'gated_conv'"):
        create_mixer("gated_conv", DIM)
    with pytest.raises(TypeError, match="not_an_arg"):
        create_mixer("attention", DIM, not_an_arg=1)
    attention = create_mixer("attention", DIM, **SETTINGS)  # takes d_state etc., drops chunk_size, max_seq_len
    assert attention.d_state == SETTINGS["d_state"] and not hasattr(attention, "max_seq_len")
    assert set(SETTINGS) == set(SHARED_SETTINGS)
    with pytest.raises(ValueError, match="not divisible by headdim"):
        create_mixer("cauchy_dd", DIM, headdim=24)
    with pytest.raises(ValueError, match="split into two halves"):
        create_mixer("concat", DIM, headdim=16, ngroups=4)
