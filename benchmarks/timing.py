"""Shared timing helpers for the benchmark scripts: environment header, do_bench statistics,
peak memory, JSON lines. Every script prints one header line, then one JSON line per case."""
from __future__ import annotations

import datetime
import json
import platform
import statistics
import sys
import time
from typing import Callable, TextIO

import torch

__all__ = ["copy_gbps", "cpu_time_ms", "emit", "env_header", "gpu_busy_ms", "kernel_us", "largest", "peak_memory_gib",
           "profile_table", "time_ms"]


def env_header() -> dict:
    """Date, host, device and library versions of this run."""
    import triton

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    return {
        "kind": "header",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "sm_count": props.multi_processor_count if props else None,
        "gpu_mem_gib": round(props.total_memory / 2**30, 1) if props else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
    }


def time_ms(fn: Callable[[], object], warmup_ms: float = 25.0, rep_ms: float = 100.0,
            grad_to_none: list[torch.Tensor] | None = None) -> dict:
    """Median and 20/80% quantiles (ms) of fn() from `triton.testing.do_bench` (CUDA events, L2 flushed)."""
    from triton.testing import do_bench

    med, q20, q80 = do_bench(fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=grad_to_none, quantiles=[0.5, 0.2, 0.8])
    return {"ms": round(med, 4), "ms_q20": round(q20, 4), "ms_q80": round(q80, 4)}


def cpu_time_ms(fn: Callable[[], object], warmup: int, reps: int, before: Callable[[], object] = lambda: None) -> dict:
    """Median and 20/80% quantiles (ms) of fn() by time.perf_counter (do_bench needs CUDA), `before()` run untimed
    ahead of each timed call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        before()
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else times * 9
    return {"ms": round(statistics.median(times), 4), "ms_q20": round(q[1], 4), "ms_q80": round(q[7], 4)}


def peak_memory_gib(fn: Callable[[], object]) -> float:
    """Peak CUDA memory allocated during one fn() call, above what was allocated before it (GiB)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - base) / 2**30, 4)


def profile_table(fn: Callable[[], object], title: str, steps: int, rows: int,
                  sort_by: tuple[str, ...] = ("self_cuda_time_total",), cpu_ops: bool = True) -> str:
    """torch.profiler tables of `steps` calls of fn() (warmed up by the caller), profiled once: one
    table of `rows` rows per key of `sort_by`; with `cpu_ops` the aten operators appear next to the
    CUDA kernels, and one more table splits them by input shape (by the first key: a copy or an
    elementwise op that costs much names its tensors there)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cpu_ops else [ProfilerActivity.CUDA]
    with profile(activities=activities, record_shapes=cpu_ops) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    tables = [f"# profile {title} ({steps} steps, by {key})\n"
              + averages.table(sort_by=key, row_limit=rows, max_name_column_width=70) for key in sort_by]
    if cpu_ops:
        by_shape = prof.key_averages(group_by_input_shape=True)
        tables.append(f"# profile {title} ({steps} steps, by {sort_by[0]} and input shapes)\n"
                      + by_shape.table(sort_by=sort_by[0], row_limit=rows, max_name_column_width=50,
                                       max_shapes_column_width=80))
        tables.append(gpu_wait_summary(prof.events(), averages))
    return "\n".join(tables)


def _cuda_profile(fn: Callable[[], object], steps: int):
    """torch.profiler's CUDA activity over `steps` calls of fn() (warmed up by the caller)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    return prof


def gpu_busy_ms(fn: Callable[[], object], steps: int = 3) -> float:
    """GPU time per call of fn() (warmed up by the caller): the union of its kernels' intervals over
    `steps` profiled calls, divided by `steps`. Below the wall time per call when the host, not the
    GPU, sets the pace (an A/B of GPU work must then compare this, not the wall time)."""
    prof = _cuda_profile(fn, steps)
    return round(busy_time(kernel_intervals(prof.events())) / 1e3 / steps, 3)


def host_ms(fn: Callable[[], object], steps: int = 5,
            synchronize: Callable[[], None] = torch.cuda.synchronize) -> float:
    """Median host time (ms) of fn() (warmed up by the caller) from a synchronised start to its return, not waiting
    for the device: the host's share of a step. Near the step's wall time when the host sets the pace."""
    ms = cpu_time_ms(fn, warmup=0, reps=steps, before=synchronize)["ms"]
    synchronize()
    return ms


def kernel_us(fn: Callable[[], object], steps: int = 10) -> dict[str, float]:
    """Device time per call of fn() (us, warmed up by the caller) of every kernel it launches, by name."""
    averages = _cuda_profile(fn, steps).key_averages()
    return {e.key: round(e.device_time_total / steps, 1) for e in averages if e.device_time_total > 0}


def largest(times: dict[str, float], count: int) -> dict[str, float]:
    """The `count` entries of {name: time} with the largest times, largest first."""
    return dict(sorted(times.items(), key=lambda item: -item[1])[:count])


def copy_gbps(numel: int, dtype: torch.dtype) -> float:
    """The device's achieved copy bandwidth (GB/s, read + write) on a tensor of numel elements: the
    yardstick for memory-bound kernels."""
    src = torch.empty(numel, device="cuda", dtype=dtype)
    dst = torch.empty_like(src)
    return 2 * numel * src.element_size() / time_ms(lambda: dst.copy_(src))["ms"] / 1e6


def kernel_intervals(events) -> list[tuple[float, float]]:
    """(start, end) in us of the GPU events among torch.profiler's `events`."""
    from torch.autograd import DeviceType

    return [(e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA]


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def gpu_wait_summary(events, averages) -> str:
    """How much of the profiled window the GPU ran kernels, and every CUDA runtime / driver call made
    (count, host ms): a synchronisation shows up here as a call whose host time is the GPU's backlog."""
    kernels = kernel_intervals(events)
    lines = ["# GPU busy and CUDA API calls"]
    if kernels:
        window = max(end for _, end in kernels) - min(start for start, _ in kernels)
        busy = busy_time(kernels)
        lines.append(f"GPU busy {busy / 1e3:.1f} ms of a {window / 1e3:.1f} ms window ({100 * busy / window:.0f}%)")
    calls = sorted((e for e in averages if e.key.startswith("cu") and e.self_cpu_time_total > 0),
                   key=lambda e: -e.self_cpu_time_total)
    lines += [f"{e.key:<40} {e.count:>7} calls {e.self_cpu_time_total / 1e3:>9.2f} ms" for e in calls]
    return "\n".join(lines)


def python_profile_table(fn: Callable[[], object], title: str, steps: int, rows: int) -> str:
    """cProfile of `steps` calls of fn() (warmed up by the caller): the Python functions by own time, the
    host cost that torch.profiler shows only as the self time of the operator around them."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(rows)
    return f"# python profile {title} ({steps} steps, by own time)\n" + text.getvalue()


def sync_report(fn: Callable[[], object], title: str, steps: int = 2) -> str:
    """The synchronising CUDA calls of `steps` calls of fn() (warmed up by the caller), each distinct
    one once with its count and the Python stack that made it (torch.cuda.set_sync_debug_mode)."""
    import traceback
    import warnings

    seen: dict[str, int] = {}
    stacks: dict[str, str] = {}

    def record(message, category, filename, lineno, file=None, line=None) -> None:
        stack = "".join(traceback.format_stack()[-12:-1])
        key = f"{message}\n{stack}"
        seen[key] = seen.get(key, 0) + 1
        stacks[key] = stack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # switching the mode on warns that it is a prototype: not a sync
        torch.cuda.set_sync_debug_mode("warn")
        warnings.simplefilter("always")
        warnings.showwarning = record
        try:
            for _ in range(steps):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    lines = [f"# synchronising calls {title} ({steps} steps): {sum(seen.values())} in {len(seen)} places"]
    for key, count in sorted(seen.items(), key=lambda kv: -kv[1]):
        lines.append(f"## {count} x {key}")
    return "\n".join(lines)


def emit(record: dict, stream: TextIO | None = None) -> None:
    """One JSON line on stdout (and on `stream` when given)."""
    line = json.dumps(record)
    print(line, flush=True)
    if stream is not None:
        stream.write(line + "\n")
        stream.flush()
