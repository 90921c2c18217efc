"""CachedLauncher on CPU: Triton's path is stood in for by a recording JITFunction.run, the compiled
kernel by a recorder of its launcher's arguments. Checks that a cached launch passes exactly what
Triton's path binds, and that every change Triton specializes on goes back through Triton's path."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

from hydra_vision.kernels import launcher as launcher_module
from hydra_vision.kernels.launcher import CachedLauncher, triton_kernel

pytestmark = pytest.mark.skipif(not launcher_module._enabled(), reason="Triton outside the checked versions")


def _source(x, n, scale, y, L, BLOCK: tl.constexpr, MODE: tl.constexpr = "a"):
    """The stand-in kernel's signature (never compiled)."""


class FakeCompiled:
    """A CompiledKernel's launch surface: `run(gx, gy, gz, stream, function, metadata, launch_meta, enter, exit,
    *args)` recorded."""

    def __init__(self, calls: list):
        self.function, self.packed_metadata, self.calls = "fn-handle", "meta", calls

    def run(self, *launch):
        self.calls.append(launch)


def _kernel(configs: list | None = None):
    """(launcher, list of Triton-path calls, list of compiled launches) over a JITFunction of `_source`."""
    jit_fn = JITFunction(_source)
    slow_calls, launches = [], []
    compiled = FakeCompiled(launches)

    def slow_run(*args, grid, warmup, **kwargs):
        slow_calls.append((args, kwargs))
        compiled.run(*grid(kwargs) if callable(grid) else grid, 0, compiled.function, compiled.packed_metadata,
                     None, None, None, *args, *[kwargs.get(n, "a") for n in jit_fn.arg_names[len(args):]])
        return compiled

    jit_fn.run = slow_run
    kernel = jit_fn
    if configs is not None:
        kernel = Autotuner(jit_fn, jit_fn.arg_names, configs, key=["L"], reset_to_zero=None, restore_value=None)
        kernel.run = lambda *args, **kwargs: _tuned_run(kernel, configs[0], *args, **kwargs)
    launcher = CachedLauncher(kernel)
    launcher._device, launcher._stream = (lambda: 0), (lambda device: 1234)
    return launcher, slow_calls, launches


def _tuned_run(autotuner, config, *args, grid, warmup, **kwargs):
    autotuner.best_config = config
    return autotuner.fn.run(*args, grid=grid, warmup=warmup, **kwargs, **config.kwargs)


def _args(x=None, n=32, scale=0.5, L=64):
    x = torch.zeros(64) if x is None else x
    return x, n, scale, torch.zeros(64), L


def _grid(meta):
    return (triton.cdiv(64, meta["BLOCK"]), 2, 3)


def test_a_cached_launch_passes_what_tritons_path_binds():
    launcher, slow, launches = _kernel()
    args = _args()
    launcher[_grid](*args, BLOCK=16)
    launcher[_grid](*args, BLOCK=16)
    assert len(slow) == 1 and len(launches) == 2
    first, cached = launches
    assert cached[:9] == (4, 2, 3, 1234, "fn-handle", "meta", None, None, None)
    assert len(cached) == len(first) and all(a is b or a == b for a, b in zip(cached[9:], first[9:]))
    assert cached[9:] == (*args, 16, "a")  # positional args, then the constexpr and the default


@pytest.mark.parametrize("change", ["n_is_one", "n_not_divisible", "n_64_bit", "misaligned_tensor", "dtype",
                                    "constexpr", "scale_type", "device"])
def test_what_triton_specializes_on_goes_back_through_tritons_path(change):
    launcher, slow, _ = _kernel()
    launcher[_grid](*_args(), BLOCK=16)
    kwargs, constexprs = {}, {"BLOCK": 16}
    if change == "n_is_one":
        kwargs["n"] = 1
    elif change == "n_not_divisible":
        kwargs["n"] = 33
    elif change == "n_64_bit":
        kwargs["n"] = 2**32
    elif change == "misaligned_tensor":
        kwargs["x"] = torch.zeros(65)[1:]
    elif change == "dtype":
        kwargs["x"] = torch.zeros(64, dtype=torch.bfloat16)
    elif change == "constexpr":
        constexprs["BLOCK"] = 32
    elif change == "scale_type":
        kwargs["scale"] = 2
    else:
        launcher._device = lambda: 1
    launcher[_grid](*_args(**kwargs), **constexprs)
    assert len(slow) == 2


def test_values_triton_does_not_specialize_on_reuse_the_cached_kernel():
    launcher, slow, launches = _kernel()
    launcher[_grid](*_args(n=32, scale=0.5, L=64), BLOCK=16)
    launcher[_grid](*_args(n=48, scale=3.0, L=80), BLOCK=16)
    assert len(slow) == 1 and len(launches) == 2
    assert launches[1][9:][1:3] == (48, 3.0)


def test_the_autotuners_key_values_and_chosen_config_are_part_of_the_entry():
    configs = [triton.Config({"BLOCK": 32}, num_warps=4)]
    launcher, slow, launches = _kernel(configs=configs)
    launcher[_grid](*_args(L=64))
    launcher[_grid](*_args(L=64))
    assert len(slow) == 1
    assert launches[1][0] == 2 and launches[1][-2:] == (32, "a")  # grid and tail from the config's BLOCK
    launcher[_grid](*_args(L=80))  # the autotuner's key changed: it may pick another config
    assert len(slow) == 2


def test_a_config_with_a_pre_hook_is_never_cached():
    configs = [triton.Config({"BLOCK": 32}, num_warps=4, pre_hook=lambda nargs: None)]
    launcher, slow, _ = _kernel(configs=configs)
    for _ in range(2):
        launcher[_grid](*_args())
    assert len(slow) == 2


def test_a_launch_hook_or_the_environment_switch_keeps_tritons_path(monkeypatch):
    launcher, slow, _ = _kernel()
    monkeypatch.setattr(launcher_module.knobs.runtime, "launch_enter_hook", lambda metadata: None)
    for _ in range(2):
        launcher[_grid](*_args(), BLOCK=16)
    assert len(slow) == 2
    monkeypatch.setenv("HYDRA_VISION_CACHED_LAUNCH", "0")
    assert not launcher_module._enabled()


def test_a_missing_argument_names_the_kernel():
    launcher, _, _ = _kernel()
    with pytest.raises(TypeError, match=r"_source: no value for the arguments \['BLOCK'\]"):
        launcher[(1,)](*_args())


def test_the_interpreters_kernels_always_take_tritons_path():
    from hydra_vision.kernels.quasiseparable import triton_chunk_fwd

    wrapped = triton_chunk_fwd.chunk_fwd_kernel
    assert isinstance(wrapped, CachedLauncher) and isinstance(triton_kernel(wrapped), Autotuner)
    assert wrapped.configs is triton_kernel(wrapped).configs  # attributes reach the wrapped autotuner
    if not isinstance(triton_kernel(wrapped).fn, JITFunction):
        assert not wrapped.enabled


def _autotuner(n_configs: int):
    jit_fn = JITFunction(_source)
    configs = [triton.Config({"BLOCK": 16 * (i + 1)}, num_warps=4) for i in range(n_configs)]
    return Autotuner(jit_fn, jit_fn.arg_names, configs, key=["L"], reset_to_zero=None, restore_value=None)


def test_the_tuning_key_is_the_one_tritons_autotuner_keeps(monkeypatch):
    autotuner = _autotuner(2)
    monkeypatch.setattr(autotuner, "_bench", lambda *args, config, **kwargs: [float(config.kwargs["BLOCK"])])
    monkeypatch.setattr(autotuner.fn, "run", lambda *args, grid, warmup, **kwargs: None)
    args = _args(x=torch.zeros(64, dtype=torch.bfloat16), L=80)
    autotuner.run(*args, grid=_grid, warmup=False)
    assert list(autotuner.cache) == [launcher_module.tuning_key(autotuner, args, {})]
    assert launcher_module.tuning_key(autotuner, _args(L=80), {}) not in autotuner.cache  # dtypes are part of it


def test_a_first_launch_compiles_the_configs_side_by_side(monkeypatch):
    from triton.runtime import _async_compile

    autotuner, seen = _autotuner(3), []

    def warmup(*args, grid, **constexprs):
        mode = _async_compile.active_mode.get()
        seen.append((mode is not None and mode.executor._max_workers, args[-1], constexprs))

    monkeypatch.setattr(autotuner, "warmup", warmup)
    monkeypatch.setattr(launcher_module.os, "cpu_count", lambda: 16)
    launcher_module.precompile_configs(autotuner, _grid, _args(L=64), {"MODE": "b"})
    assert seen == [(3, 64, {"MODE": "b"})]  # one thread per config, under Triton's async compile
    autotuner.cache[launcher_module.tuning_key(autotuner, _args(L=64), {})] = autotuner.configs[0]
    launcher_module.precompile_configs(autotuner, _grid, _args(L=64), {})
    monkeypatch.setattr(launcher_module.os, "cpu_count", lambda: 1)
    launcher_module.precompile_configs(autotuner, _grid, _args(L=80), {})
    assert len(seen) == 1  # nothing once the key is tuned, nor on one CPU
