"""Low-overhead launches of Triton kernels: a call site's compiled kernel, looked up by a cheap key.

`kernel[grid](*args, **constexprs)` through Triton binds every argument, specializes each one, hashes
the result, reads the autotuner's choice and finds the compiled kernel, on every call: about 100-200 us
of host time per launch on the device machine's CPU (cProfile of a hydra_vit_base training step,
RESULTS.md session 15), for kernels with some 40 arguments, 12 launches per block and step. Hydra-ViT's
eager steps were bound by that host time, not by the GPU.

`cached_launch(kernel)` wraps a `triton.jit` kernel or a `triton.autotune` of one. A call whose key is
new takes Triton's own path (compiling and autotuning as usual) and keeps the compiled kernel, the
chosen config and the constexpr tail of the argument list; a call with a known key launches that
compiled kernel directly. The key is what Triton specializes on (per tensor: dtype and 16-byte
alignment; per int: == 1, divisible by 16, 32-bit range; other arguments: their type), the values of
the autotuner's key arguments, the constexprs and the device; so a cached launch runs exactly the
binary that Triton's path would run. Grids may read the constexprs (the config's included) from
their meta argument, not the runtime arguments.

A first launch of an autotuned kernel compiles the configs the autotuner is about to time side by side,
in threads (`precompile_configs`; Triton's compiler releases the GIL in its MLIR passes and in ptxas), so
a cold start pays about the slowest config's compile per kernel instead of the sum of them all.

Triton's path is always taken in the CPU interpreter, when a launch hook is set (Triton's profiler),
for configs with a pre_hook, outside the Triton versions whose launcher signature was checked
(3.6-3.9), and with HYDRA_VISION_CACHED_LAUNCH=0.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import triton
from triton.runtime import driver

try:
    from triton import knobs
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction
except ImportError:  # pragma: no cover - Triton before 3.4: Triton's path only
    knobs = Autotuner = JITFunction = None
try:
    from triton.runtime._async_compile import AsyncCompileMode
except ImportError:  # pragma: no cover - Triton before 3.5: configs compile one by one
    AsyncCompileMode = None

__all__ = ["CachedLauncher", "cached_launch", "precompile_configs", "triton_kernel"]

CHECKED_VERSIONS = ((3, 6), (3, 9))  # Triton releases whose CompiledKernel.run signature this follows


def _enabled() -> bool:
    version = tuple(int(p) for p in triton.__version__.split(".")[:2])
    return (JITFunction is not None and CHECKED_VERSIONS[0] <= version <= CHECKED_VERSIONS[1]
            and os.environ.get("HYDRA_VISION_CACHED_LAUNCH", "1") != "0")


def _arg_key(arg: Any) -> Any:
    """What Triton's specialization reads from one runtime argument: for an int, == 1 and divisibility by
    16 within its integer type (i32, i64, u64); for a tensor, dtype and 16-byte alignment; else the type."""
    if type(arg) is int:
        if -0x80000000 <= arg <= 0x7FFFFFFF:
            return 2 if arg == 1 else arg % 16 == 0
        return (3 if arg < 0x8000000000000000 else 5) + (arg % 16 == 0)
    if isinstance(arg, torch.Tensor):
        return arg.dtype, arg.data_ptr() % 16 == 0
    return type(arg)


def tuning_key(autotuner: Any, args: tuple, constexprs: dict) -> tuple:
    """The key under which Triton's autotuner keeps its choice for this call (as `Autotuner.run` builds it:
    the key arguments' values, then the dtype of every tensor argument)."""
    named = {k: v for k, v in {**dict(zip(autotuner.arg_names, args)), **constexprs}.items()
             if k in autotuner.arg_names}
    return (*(named[k] for k in autotuner.keys if k in named),
            *(str(v.dtype) for v in named.values() if hasattr(v, "dtype")))


def precompile_configs(autotuner: Any, grid: Any, args: tuple, constexprs: dict) -> None:
    """Compiles every config that `autotuner` would time for this call, in threads, into Triton's caches, so
    that its timing finds them built. Nothing when the autotuner already chose a config for this key, when
    there is one config or one CPU, or without Triton's async compile (before 3.5). A config that fails to
    compile is left to the autotuner, which compiles it again and reports or skips it as usual."""
    workers = min(len(autotuner.configs), os.cpu_count() or 1)
    if AsyncCompileMode is None or workers < 2 or tuning_key(autotuner, args, constexprs) in autotuner.cache:
        return
    with ThreadPoolExecutor(workers) as pool, AsyncCompileMode(pool, ignore_errors=True):
        autotuner.warmup(*args, grid=grid, **constexprs)


def _launch_hooked() -> bool:
    """True when a launch hook is set (Triton 3.6-3.9 keep them in HookChains, empty by default)."""
    hooks = (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    return any(hook is not None and bool(getattr(hook, "calls", True)) for hook in hooks)


class CachedLauncher:
    """`launcher[grid](*args, **constexprs)` as `kernel[grid](...)`, with the compiled kernel cached per key.
    Other attributes are the wrapped kernel's (`configs`, `fn`, ...)."""

    def __init__(self, kernel: Any):
        self.kernel = kernel
        jit_fn = kernel
        while JITFunction is not None and not isinstance(jit_fn, JITFunction) and hasattr(jit_fn, "fn"):
            jit_fn = jit_fn.fn
        self.enabled = _enabled() and isinstance(jit_fn, JITFunction)  # False for the interpreter's functions
        self.name = getattr(jit_fn, "__name__", repr(kernel))
        self.arg_names = list(jit_fn.arg_names) if self.enabled else []
        self.defaults = {name: p.default for name, p in jit_fn.signature.parameters.items()
                         if p.default is not p.empty} if self.enabled else {}
        tuned = list(kernel.keys) if self.enabled and isinstance(kernel, Autotuner) else []
        self.tuned_positions = [self.arg_names.index(name) for name in tuned if name in self.arg_names]
        self.entries: dict[tuple, tuple] = {}
        self._device: Callable[[], int] | None = None
        self._stream: Callable[[int], int] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["kernel"], name)

    def __getitem__(self, grid: Any) -> Callable[..., Any]:
        return lambda *args, **constexprs: self.launch(grid, args, constexprs)

    def launch(self, grid: Any, args: tuple, constexprs: dict) -> Any:
        """One launch of the kernel on `grid` (a tuple, or a function of the constexprs)."""
        if not self.enabled or _launch_hooked():
            return self.kernel[grid](*args, **constexprs)
        if self._device is None:
            self._device, self._stream = driver.active.get_current_device, driver.active.get_current_stream
        device = self._device()
        key = self._key(device, args, constexprs)
        entry = self.entries.get(key)
        if entry is None:
            return self._first_launch(key, grid, args, constexprs)
        compiled, meta, tail = entry
        grid = grid(meta) if callable(grid) else grid
        compiled.run(grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1, self._stream(device),
                     compiled.function, compiled.packed_metadata, None, None, None, *args, *tail)
        return compiled

    def _key(self, device: int, args: tuple, constexprs: dict) -> tuple:
        tuned = tuple(args[i] for i in self.tuned_positions if i < len(args))
        return (device, tuple(map(_arg_key, args)), tuned, tuple(constexprs.items()))

    def _first_launch(self, key: tuple, grid: Any, args: tuple, constexprs: dict) -> Any:
        """Triton's path (an autotuner's configs compiled side by side first); the compiled kernel, its
        constexprs and argument tail are kept under `key`."""
        if isinstance(self.kernel, Autotuner):
            precompile_configs(self.kernel, grid, args, constexprs)
        compiled = self.kernel[grid](*args, **constexprs)
        config = getattr(self.kernel, "best_config", None) if isinstance(self.kernel, Autotuner) else None
        if not all(hasattr(compiled, a) for a in ("run", "function", "packed_metadata")) or (
                config is not None and config.pre_hook is not None):
            return compiled  # not a compiled kernel (e.g. the interpreter's) or a config with a hook: no cache
        meta = {**constexprs, **(config.kwargs if config is not None else {})}
        missing = [n for n in self.arg_names[len(args):] if n not in meta and n not in self.defaults]
        if missing:
            raise TypeError(f"{self.name}: no value for the arguments {missing}")
        tail = tuple(meta[n] if n in meta else self.defaults[n] for n in self.arg_names[len(args):])
        self.entries[key] = (compiled, meta, tail)
        return compiled


cached_launch = CachedLauncher  # the decorator's name: @cached_launch over @triton.jit / @triton.autotune


def triton_kernel(kernel: Any) -> Any:
    """The Triton object (Autotuner or JITFunction) under a `CachedLauncher`, or `kernel` itself."""
    return kernel.kernel if isinstance(kernel, CachedLauncher) else kernel
