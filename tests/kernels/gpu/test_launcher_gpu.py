"""Cached launches on a CUDA device (skipped without CUDA): every fused op gives bitwise the same
outputs and gradients through the cached compiled kernels as through Triton's own launch path,
including a call whose tensors lose 16-byte alignment after the aligned one was cached; a first launch
compiles an autotuner's configs in worker threads."""
from __future__ import annotations

import threading

import pytest
import torch
import triton
import triton.language as tl

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

from hydra_vision.kernels.dwconv import triton_conv
from hydra_vision.kernels.dwconv.triton_conv import depthwise_conv1d_silu_triton
from hydra_vision.kernels.gated_rmsnorm import triton_norm
from hydra_vision.kernels.gated_rmsnorm.triton_norm import gated_rmsnorm_triton
from hydra_vision.kernels.launcher import CachedLauncher, cached_launch
from hydra_vision.kernels.quasiseparable import triton_dt, triton_mix, triton_states
from hydra_vision.kernels.quasiseparable.triton_mix import quasiseparable_mix_triton

pytestmark = pytest.mark.gpu
LAUNCHERS = [obj for module in (triton_conv, triton_norm, triton_dt, triton_mix, triton_states)
             for obj in vars(module).values() if isinstance(obj, CachedLauncher)]


def _outputs(fn, tensors: list[torch.Tensor], dy: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().requires_grad_() for t in tensors]
    y = fn(*leaves)
    return [y.detach(), *torch.autograd.grad(y, leaves, dy)]


def _mix(offset: int) -> tuple:
    """Hydra-shaped mix inputs as views of one projection; `offset` elements shift every view."""
    g = torch.Generator("cuda").manual_seed(0)
    batch, L, H, P, N = 2, 300, 4, 64, 64
    conv = torch.randn(batch * L * (H * P + 4 * N) + offset, device="cuda", generator=g, dtype=torch.bfloat16)
    conv = conv[offset:].view(batch, L, H * P + 4 * N)
    x = conv[..., :H * P].unflatten(-1, (H, P))
    Bf, Cf, Bb, Cb = (conv[..., H * P + i * N:H * P + (i + 1) * N].unsqueeze(2) for i in range(4))
    dt = torch.randn(batch, L, 2 * H, device="cuda", generator=g, dtype=torch.bfloat16)
    A = -torch.rand(H, device="cuda", generator=g) - 0.5
    D = torch.randn(H, device="cuda", generator=g)

    def mix(x, dt, A, Bf, Cf, Bb, Cb, D):
        return quasiseparable_mix_triton(x, dt[..., :H], dt[..., H:], A, Bf, Cf, Bb, Cb, D, dt_softplus=True,
                                         chunk_size=128)
    return mix, [x, dt, A, Bf, Cf, Bb, Cb, D], torch.randn(batch, L, H, P, device="cuda", generator=g,
                                                           dtype=torch.bfloat16)


def _conv(offset: int) -> tuple:
    g = torch.Generator("cuda").manual_seed(1)
    x = torch.randn(2 * 197 * 320 + offset, device="cuda", generator=g, dtype=torch.bfloat16)[offset:]
    x = x.view(2, 197, 320)
    w, b = torch.randn(320, 4, device="cuda", generator=g), torch.randn(320, device="cuda", generator=g)
    dy = torch.randn(2, 197, 320, device="cuda", generator=g, dtype=torch.bfloat16)
    return (lambda x, w, b: depthwise_conv1d_silu_triton(x, w, b, causal=False, silu_channels=320)), [x, w, b], dy


def _norm(offset: int) -> tuple:
    g = torch.Generator("cuda").manual_seed(2)
    xz = torch.randn(2 * 197 * 512 + offset, device="cuda", generator=g, dtype=torch.bfloat16)[offset:]
    xz = xz.view(2, 197, 512)
    w = torch.randn(256, device="cuda", generator=g)
    dy = torch.randn(2, 197, 256, device="cuda", generator=g, dtype=torch.bfloat16)
    return (lambda x, z, w: gated_rmsnorm_triton(x, z, w, 1e-5)), [xz[..., :256], xz[..., 256:], w], dy


@pytest.mark.parametrize("case", [_mix, _conv, _norm], ids=["mix", "conv", "norm"])
def test_cached_launches_match_tritons_path_bitwise(case, monkeypatch):
    results = {}
    for offset in (0, 1):  # aligned views first (cached), then views one element off 16-byte alignment
        fn, tensors, dy = case(offset)
        before = sum(len(launcher.entries) for launcher in LAUNCHERS)
        cached = [_outputs(fn, tensors, dy) for _ in range(2)][1]  # the second call runs from the cache
        after = sum(len(launcher.entries) for launcher in LAUNCHERS)
        assert after > before if offset else after > 0  # misaligned views are new keys
        with monkeypatch.context() as patch:
            for launcher in LAUNCHERS:
                patch.setattr(launcher, "enabled", False)
            results[offset] = (cached, _outputs(fn, tensors, dy))
    for offset, (cached, triton_path) in results.items():
        for i, (a, b) in enumerate(zip(cached, triton_path)):
            assert torch.equal(a, b), f"offset {offset}, output {i}"


def _scale_source(x, y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y + offs, 2 * tl.load(x + offs, mask=offs < n), mask=offs < n)


def test_a_first_launch_compiles_the_autotuners_configs_in_threads(monkeypatch):
    configs = [triton.Config({"BLOCK": b}, num_warps=w) for b in (64, 128) for w in (1, 2)]
    kernel = cached_launch(triton.autotune(configs=configs, key=["n"])(triton.jit(_scale_source)))
    threads, compile_fn = [], triton.compiler.compile

    def recording_compile(*args, **kwargs):
        threads.append(threading.current_thread())
        return compile_fn(*args, **kwargs)

    # a JITFunction takes triton.compiler.compile when it first runs on a device
    monkeypatch.setattr(triton.compiler, "compile", recording_compile)
    x = torch.randn(1000, device="cuda")
    y = torch.empty_like(x)
    kernel[lambda meta: (triton.cdiv(1000, meta["BLOCK"]),)](x, y, 1000)
    assert torch.equal(y, 2 * x)
    assert len(threads) == len(configs) and threading.main_thread() not in threads
