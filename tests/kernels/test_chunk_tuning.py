"""chunk_size=None: the chunk length is chosen by timing once per key, and the result does not change."""
from unittest import mock

import pytest
import torch

from hydra_vision.kernels import quasiseparable_mix
from hydra_vision.kernels.quasiseparable import chunk_tuning

COSTS = {64: 3.0, 128: 1.0, 256: 2.0}  # fake ms per chunk_size: 128 is the fastest


@pytest.fixture
def timed(monkeypatch):
    """chunk_tuning as on a GPU (not interpreting), with a fake clock; yields the chunk sizes it ran."""
    ran = []
    monkeypatch.setattr(chunk_tuning, "_tuned", {})
    monkeypatch.setattr(chunk_tuning, "interpreting", lambda: False)
    monkeypatch.setattr(chunk_tuning, "_time_ms", lambda fn: fn())
    yield ran


def test_fastest_candidate_is_kept_and_timed_once(timed):
    def run(q):
        timed.append(q)
        return COSTS[q]

    assert chunk_tuning.tuned_chunk_size("key", 600, run) == 128
    assert chunk_tuning.tuned_chunk_size("key", 600, run) == 128
    assert timed == [64, 128, 256]  # three distinct Q at L = 600, each timed once for this key


def test_candidates_that_give_the_same_chunk_are_timed_once(timed):
    run = mock.Mock(side_effect=lambda q: COSTS[q])
    # L = 100: chunk_size 128 and 256 both give one chunk of 128 tokens
    chunk_tuning.tuned_chunk_size("short", 100, run)
    assert sorted(c.args[0] for c in run.call_args_list) == [64, 256]
    run.reset_mock()
    assert chunk_tuning.tuned_chunk_size("tiny", 50, run) in chunk_tuning.CANDIDATES
    run.assert_not_called()  # one chunk whatever the candidate: nothing to time


def test_no_timing_in_the_interpreter_or_while_compiling(monkeypatch):
    monkeypatch.setattr(chunk_tuning, "_tuned", {})
    run = mock.Mock()
    assert chunk_tuning.tuned_chunk_size("k", 600, run) == chunk_tuning.DEFAULT_CHUNK  # interpreter
    monkeypatch.setattr(chunk_tuning, "interpreting", lambda: False)
    with mock.patch.object(torch.compiler, "is_compiling", return_value=True):
        assert chunk_tuning.tuned_chunk_size("k", 600, run) == chunk_tuning.DEFAULT_CHUNK
    run.assert_not_called()


def test_mix_with_tuned_chunks_equals_a_fixed_chunk(mix_inputs, monkeypatch):
    """The tuning runs the real forward + backward launchers for each candidate (here interpreted,
    the later candidates timed faster) and the tuned mix equals a fixed-chunk one."""
    monkeypatch.setattr(chunk_tuning, "_tuned", {})
    monkeypatch.setattr(chunk_tuning, "interpreting", lambda: False)
    costs = iter([3.0, 2.0, 1.0])
    timed = []
    monkeypatch.setattr(chunk_tuning, "_time_ms", lambda fn: (fn(), timed.append(1), next(costs))[-1])
    kw = mix_inputs(L=80, seed=3)  # candidates give chunks of 64 (two chunks) and 128 (one)
    tuned = quasiseparable_mix(**kw, chunk_size=None, backend="triton")
    assert len(timed) == 2 and list(chunk_tuning._tuned.values()) == [256]
    torch.testing.assert_close(tuned, quasiseparable_mix(**kw, chunk_size=16, backend="triton"), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(quasiseparable_mix(**kw, chunk_size=None, backend="reference"), tuned,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("L, expected", [(1, 256), (197, 256), (256, 256), (257, 64), (4097, 64)])
def test_auto_is_one_chunk_up_to_256_tokens_and_64_beyond(L, expected):
    assert chunk_tuning.auto_chunk_size(L) == expected
    assert chunk_tuning.resolve_chunk_size("auto", L) == expected
    assert chunk_tuning.resolve_chunk_size(128, L) == 128 and chunk_tuning.resolve_chunk_size(None, L) is None


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("L", [40, 300])
def test_auto_runs_the_mix_at_the_rule_s_chunk(mix_inputs, monkeypatch, backend, L):
    """"auto" reaches the kernels as auto_chunk_size(L): the triton launchers' chunk_length and the reference's
    chunk bound (resolved in `reference_chunk`) see 256 at L = 40 and 64 at L = 300, and the result equals
    the mix at that chunk_size."""
    from hydra_vision.kernels.quasiseparable import reference, triton_mix

    seen = []
    if backend == "triton":
        original = triton_mix.chunk_length
        monkeypatch.setattr(triton_mix, "chunk_length", lambda L, q: (seen.append(q), original(L, q))[1])
    else:
        original = reference.resolve_chunk_size
        monkeypatch.setattr(reference, "resolve_chunk_size", lambda q, L: (seen.append(original(q, L)), seen[-1])[1])
    kw = mix_inputs(L=L, H=2, P=8, N=8, seed=4)
    auto = quasiseparable_mix(**kw, chunk_size="auto", backend=backend)
    expected = 256 if L <= 256 else 64
    assert set(seen) == {expected}
    torch.testing.assert_close(auto, quasiseparable_mix(**kw, chunk_size=expected, backend=backend), rtol=0, atol=0)


def test_an_unknown_chunk_size_names_the_choices(mix_inputs):
    with pytest.raises(ValueError, match="chunk_size must be a positive int, 'auto' or None, got 'fast'"):
        quasiseparable_mix(**mix_inputs(L=8, seed=1), chunk_size="fast", backend="triton")
