"""The chunk states' storage type: walked in fp32, rounded once where they are stored; bf16 only in a
bf16 forward pass (`triton_config.forward_state_dtype`), fp32 wherever the backward reads them."""
from __future__ import annotations

import math

import pytest
import torch
import triton

from hydra_vision.kernels.quasiseparable import triton_mix, triton_states
from hydra_vision.kernels.quasiseparable.triton_dt import dt_forward
from hydra_vision.kernels.quasiseparable.triton_mix import quasiseparable_mix_triton
from hydra_vision.kernels.quasiseparable.triton_states import chunk_states, chunk_states_and_adjoints

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("adjoint", [False, True], ids=["states", "adjoint"])
def test_stored_states_are_the_fp32_walk_rounded_once(mix_inputs, adjoint):
    kw = mix_inputs(2, 45, 2, 8, 1, 16, dtype=torch.bfloat16, seed=4, device=DEVICE)
    Q = 16
    dta, cum, _ = dt_forward(kw["dt_fwd"], kw["dt_bwd"], kw["A"], kw["dt_bias"], True, 0.0, math.inf, Q)
    u, K0, K1 = (kw["x"], kw["B_fwd"], kw["B_bwd"]) if not adjoint else (kw["x"], kw["C_fwd"], kw["C_bwd"])
    walked = chunk_states(u, K0, K1, dta, cum, kw["A"], Q, adjoint, True)
    stored = chunk_states(u, K0, K1, dta, cum, kw["A"], Q, adjoint, True, torch.bfloat16)
    assert walked.dtype == torch.float32 and stored.dtype == torch.bfloat16
    assert walked.abs().amax() > 0.1  # the chunks carry something
    # one rounding: below one bf16 ulp (the interpreter truncates, the GPU rounds to nearest)
    torch.testing.assert_close(stored.float(), walked, rtol=torch.finfo(torch.bfloat16).eps, atol=0)


def test_a_walk_split_over_the_state_index_matches_one_block(mix_inputs, monkeypatch):
    """A config with N_SPLIT = 2 (half of the state's columns per program, twice the programs) and
    16-row blocks of P walks the same states as the default config."""
    kw = mix_inputs(2, 45, 2, 32, 1, 32, seed=6, device=DEVICE)
    Q = 16
    dta, cum, _ = dt_forward(kw["dt_fwd"], kw["dt_bwd"], kw["A"], kw["dt_bias"], True, 0.0, math.inf, Q)
    args = (kw["x"], kw["B_fwd"], kw["B_bwd"], dta, cum, kw["A"], Q, False, True)
    whole = chunk_states(*args)
    launcher = triton_states._states_kernel
    monkeypatch.setattr(launcher, "entries", {})  # no compiled kernel kept from the default config
    monkeypatch.setattr(launcher.kernel, "configs", [triton.Config({"BLOCK_P": 16, "N_SPLIT": 2}, num_warps=4)])
    split = chunk_states(*args)
    assert whole.abs().amax() > 0.1
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)  # other dot shapes on a GPU (tf32x3)


def test_walk_splits_are_kept_only_where_each_program_has_16_state_columns():
    whole, halves, quarters = (triton.Config({"BLOCK_P": 64, "N_SPLIT": n}, num_warps=4) for n in (1, 2, 4))
    configs = [whole, halves, quarters]
    assert triton_states._prune_splits(configs, {}, BLOCK_N=16) == [whole]
    assert triton_states._prune_splits(configs, {}, BLOCK_N=32) == [whole, halves]
    assert triton_states._prune_splits(configs, {}, BLOCK_N=64) == configs


@pytest.mark.parametrize("dtype, forward_states", [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32),
                                                   (torch.float32, torch.float32)], ids=["bf16", "fp16", "fp32"])
def test_only_a_bf16_forward_stores_bf16_states(mix_inputs, cast_inputs, monkeypatch, dtype, forward_states):
    """fp16's range is too small for states; the backward's states feed dA and dt_bias through R and K'."""
    stored = []

    def recording(walk):
        def walk_and_record(*args, **kwargs):
            out = walk(*args, **kwargs)
            stored.extend(t.dtype for t in (out if isinstance(out, tuple) else (out,)))
            return out
        return walk_and_record

    monkeypatch.setattr(triton_mix, "chunk_states", recording(chunk_states))
    monkeypatch.setattr(triton_mix, "chunk_states_and_adjoints", recording(chunk_states_and_adjoints))
    kw = cast_inputs(mix_inputs(1, 40, 2, 8, 1, 8, dtype=dtype, seed=5, device=DEVICE), requires_grad=True)
    y = quasiseparable_mix_triton(**kw, chunk_size=16)
    assert stored == [forward_states]
    y.float().sum().backward()
    assert stored == [forward_states, torch.float32, torch.float32]
