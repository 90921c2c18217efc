"""Session 48: which part of the fused layer's host time grows when Inductor calls it. Times (perf_counter_ns,
per thread) every function `kernels.fused_layer` calls by module-global name, every cached Triton launch
(`CachedLauncher.launch`), and a calibration: 500 calls of an empty Python function, run inside the first
`_conv_forward` of each layer call (forward and backward: the custom op's context) and on the main thread between
steps. Cases in one process: eager (nothing compiled yet), compiled (default mode), then eager again.
Per case: median wall and host forward/backward ms a step, and per component calls and host ms a step.
With RELEASE=1, Inductor's compile workers are shut down after each case's warm-up (`release_compile_workers`).
`python layer_timer.py [MODEL IMG_SIZE BATCH]` (default hydra_vit_base 224 128; CUDA)."""
import collections
import json
import os
import statistics
import sys
import threading
import time

import timm
import torch
import torch.nn.functional as F

import hydra_vision  # noqa: F401  (registers the models)
from hydra_vision.kernels import fused_layer, launcher
from hydra_vision.training.compile_workers import release_compile_workers

release = os.environ.get("RELEASE") == "1"
name, img_size, batch = (sys.argv[1:] + ["hydra_vit_base", "224", "128"][len(sys.argv) - 1:])[:3]
device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run (HYDRA_VISION_BACKEND=triton, TRITON_INTERPRET=1)
model = timm.create_model(name, img_size=int(img_size)).to(device).train()
x = torch.randn(int(batch), 3, int(img_size), int(img_size), device=device)
y = torch.randint(0, 1000, (int(batch),), device=device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
totals = collections.Counter()  # component -> ns, this step
counts = collections.Counter()
phase = threading.local()


def empty():
    pass


def call_cost_ns(n: int = 500) -> float:
    """ns per call of an empty Python function, here and now."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        empty()
    return (time.perf_counter_ns() - t0) / n


def timed(label: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter_ns() - t0
            counts[label] += 1
    return wrapper


for attr in ("_conv_forward", "conv_backward_into", "_norm_forward", "norm_backward_into", "mix_forward",
             "mix_backward_into", "token_diagonal_backward_into", "_project_weight_grads", "_project",
             "_split_projection", "_split_conv_output", "unit_channel_stride", "_decay_rates"):
    setattr(fused_layer, attr, timed(attr, getattr(fused_layer, attr)))
launcher.CachedLauncher.launch = timed("launch", launcher.CachedLauncher.launch)
_conv = fused_layer._conv_forward


def conv_with_calibration(*args, **kwargs):
    key = "calib_in_op_" + ("backward" if threading.current_thread() is not threading.main_thread() else "main")
    totals[key] += int(call_cost_ns())
    counts[key] += 1
    return _conv(*args, **kwargs)


fused_layer._conv_forward = conv_with_calibration


def step(net):
    t0 = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = F.cross_entropy(net(x), y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return 1e3 * (t1 - t0), 1e3 * (t2 - t1)


def measure(label: str, net, n: int = 15 if device == "cuda" else 1) -> None:
    for _ in range(3 if device == "cuda" else 1):
        step(net)
    if release:
        t0 = time.perf_counter()
        released = release_compile_workers()
        print(json.dumps({"case": label, "released": released, "release_s": round(time.perf_counter() - t0, 3)}))
    walls, phases, per_step = [], [], collections.defaultdict(list)
    for _ in range(n):
        synchronize()
        totals.clear()
        counts.clear()
        main_calib = call_cost_ns()
        t0 = time.perf_counter()
        phases.append(step(net))
        synchronize()
        walls.append(1e3 * (time.perf_counter() - t0))
        per_step["calib_main_thread"].append((main_calib, 1))
        for key in totals:
            per_step[key].append((totals[key], counts[key]))
    components = {}
    for key, values in sorted(per_step.items()):
        if key.startswith("calib"):
            components[key] = {"ns_per_call": round(statistics.median(t / max(c, 1) for t, c in values), 1)}
        else:
            components[key] = {"calls": statistics.median(c for _, c in values),
                               "host_ms": round(statistics.median(t for t, _ in values) / 1e6, 2)}
    print(json.dumps({"case": label, "wall_ms": round(statistics.median(walls), 2),
                      "host_forward_ms": round(statistics.median(p[0] for p in phases), 2),
                      "host_backward_ms": round(statistics.median(p[1] for p in phases), 2),
                      "components": components}), flush=True)


measure("eager", model)
measure("compiled", torch.compile(model))
measure("eager_after_compile", model)
