"""RecomputedActivations: marked outputs are dropped after forward and rebuilt exactly in backward."""
import gc
import weakref

import pytest
import torch

from hydra_vision.layers.recompute import RecomputedActivations, autocast_input, recomputing


def _loss_and_grads(recompute: bool, keep: list) -> list[torch.Tensor]:
    """sum((a @ w)[:, 1:] @ v) under bf16 autocast; a @ w is marked for recomputation."""
    g = torch.Generator().manual_seed(0)
    a, w, v = (torch.randn(*shape, generator=g, requires_grad=True) for shape in ((4, 8), (8, 9), (8, 3)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if recompute:
            with RecomputedActivations() as recomputed:
                h = recomputed.run(torch.matmul, a, w)  # bf16 only under autocast
                loss = (h[:, 1:] @ v).float().sum()  # saves a view of h (an offset) for v's gradient
        else:
            h = a @ w
            loss = (h[:, 1:] @ v).float().sum()
    keep.append(weakref.ref(h))
    del h
    gc.collect()
    keep.append(keep[0]() is not None)
    return [loss.detach(), *torch.autograd.grad(loss, (a, w, v))]


def test_rebuilt_views_under_the_forwards_autocast_give_the_same_gradients():
    """The rerun happens under the forward's autocast (bf16 here): without it the recomputed storage would
    hold fp32 values and the rebuilt view would read the wrong bytes."""
    kept_plain, kept_recomputed = [], []
    plain = _loss_and_grads(False, kept_plain)
    recomputed = _loss_and_grads(True, kept_recomputed)
    for x, y in zip(recomputed, plain, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert kept_plain[1] and not kept_recomputed[1]  # stored without recomputation, freed with it


def test_each_output_is_recomputed_once_however_many_views_are_saved():
    calls = []

    def double(t):
        calls.append(1)
        return 2 * t

    x = torch.randn(6, 4, requires_grad=True)
    with RecomputedActivations() as recomputed:
        h = recomputed.run(double, x)
        loss = (h[:3] * h[3:]).sum() + (h * h).sum()  # three saved views of one output
    loss.backward()
    assert len(calls) == 2  # forward, then one rerun in backward
    torch.testing.assert_close(x.grad, 4 * torch.cat([x[3:], x[:3]]).detach() + 8 * x.detach())


@pytest.mark.parametrize("marked", [None, 1])
def test_only_the_first_marked_outputs_are_rebuilt(marked):
    """run(fn, x, marked=1): of fn's outputs (2x, 3x) only the first is rebuilt from a rerun; the second stays
    as saved. Told apart by changing the second in place after forward (which the run's contract forbids):
    d/dx sum((2x)^2 + b^2) = 8x + 6b reads the saved b + 1 where b is stored and the rerun's 3x where it is not."""
    calls = []

    def pair(t):
        calls.append(1)
        return 2 * t, 3 * t

    x = torch.randn(5, requires_grad=True)
    with RecomputedActivations() as recomputed:
        a, b = recomputed.run(pair, x, marked=marked)
        loss = (a * a).sum() + (b * b).sum()
    with torch.no_grad():
        b.add_(1)
    loss.backward()
    assert len(calls) == 2  # forward, then one rerun
    b_seen = 3 * x.detach() + (1 if marked == 1 else 0)
    torch.testing.assert_close(x.grad, 8 * x.detach() + 6 * b_seen)


def test_autocast_input_makes_the_copy_a_matmul_saves_droppable():
    """Under autocast a matmul saves its own low-precision copy of an fp32 input, which `run` never sees;
    cast first with `autocast_input`, the saved tensor is the marked output and backward reruns it."""
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(5, 8, requires_grad=True)
    for cast, reruns in ((False, 0), (True, 1)):
        calls = []

        def scaled(t):
            calls.append(1)
            out = 2 * t  # fp32: autocast leaves elementwise ops alone
            return autocast_input(out) if cast else out

        with torch.autocast("cpu", dtype=torch.bfloat16), RecomputedActivations() as recomputed:
            loss = torch.nn.functional.linear(recomputed.run(scaled, x), w).float().sum()
        loss.backward()
        assert len(calls) == 1 + reruns, cast
    assert autocast_input(x) is x  # autocast off: unchanged


def test_recomputing_only_in_plain_eager_autograd():
    """Not under no_grad, on meta tensors, under a dispatch mode or inside other saved-tensor hooks (grad
    checkpointing, save_on_cpu), whose handling of the saved tensors it would override; its own nest."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2)
    assert recomputing(True, x) and not recomputing(False, x)
    with torch.no_grad():
        assert not recomputing(True, x)
    assert not recomputing(True, x.to("meta"))
    with FlopCounterMode(display=False):
        assert not recomputing(True, x)
    with torch.autograd.graph.save_on_cpu():
        assert not recomputing(True, x)
    with RecomputedActivations():
        assert recomputing(True, x)


def test_marked_outputs_live_until_the_context_ends():
    """A marked output freed inside the context could hand its address to another tensor, which would then
    be dropped and rebuilt wrongly; the context keeps marked outputs alive until it ends."""
    x = torch.randn(3, requires_grad=True)
    with RecomputedActivations() as recomputed:
        ref = weakref.ref(recomputed.run(torch.exp, x))
        gc.collect()
        assert ref() is not None
    gc.collect()
    assert ref() is None


def test_an_op_that_saves_its_own_output_leaves_no_reference_cycle():
    x = torch.randn(3, requires_grad=True)
    with RecomputedActivations():
        ref = weakref.ref(torch.exp(x))  # exp's backward keeps its output
    gc.collect()
    assert ref() is None
