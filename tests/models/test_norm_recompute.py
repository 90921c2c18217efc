"""recompute_norm: the gated norm's output is recomputed in backward, not stored, and nothing else changes."""
import pytest
import torch

from hydra_vision.layers import MatrixMixer

from ._helpers import create, images


def _saved_and_norm_outputs(model, x):
    """(data pointers of every tensor autograd saves in a forward, the mixers' norm outputs)."""
    saved, norm_outputs = set(), []
    hooks = [m.norm.register_forward_hook(lambda mod, args, out: norm_outputs.append(out))  # keeps them alive
             for m in model.modules() if isinstance(m, MatrixMixer)]

    def pack(t):
        saved.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    for h in hooks:
        h.remove()
    return saved, norm_outputs


@pytest.mark.parametrize("recompute", [False, True])
def test_norm_output_is_saved_only_without_recompute(recompute):
    model = create("hydra_vit_tiny", recompute_norm=recompute)
    saved, norm_outputs = _saved_and_norm_outputs(model, images())
    assert len(norm_outputs) == 2 * (2 if recompute else 1)  # recompute runs each norm again in backward
    first_pass = norm_outputs[:2]
    kept = [out.untyped_storage().data_ptr() in saved for out in first_pass]
    assert kept == [not recompute] * 2


@pytest.mark.parametrize("mixer", ["quasiseparable", "attention", "toeplitz_dd"])
def test_same_loss_and_gradients(mixer):
    plain, recomputing = (create("hydra_vit_tiny", mixer=mixer, recompute_norm=r, drop_path_rate=0.0)
                          for r in (False, True))
    recomputing.load_state_dict(plain.state_dict())
    x = images()
    losses = [m(x).square().mean() for m in (plain, recomputing)]
    grads = [torch.autograd.grad(loss, list(m.parameters())) for loss, m in zip(losses, (plain, recomputing))]
    torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)
    for g_recomputed, g_plain in zip(*grads[::-1]):
        torch.testing.assert_close(g_recomputed, g_plain, rtol=1e-6, atol=1e-7)


def test_set_norm_recompute_reaches_every_mixer_and_inference_skips_it():
    model = create("hydra_vit_tiny")
    mixers = [m for m in model.modules() if isinstance(m, MatrixMixer)]
    assert mixers and not any(m.recompute_norm for m in mixers)
    model.set_norm_recompute(True)
    assert all(m.recompute_norm for m in mixers)
    with torch.no_grad():
        torch.testing.assert_close(model(images()), create("hydra_vit_tiny")(images()), rtol=0, atol=0)
