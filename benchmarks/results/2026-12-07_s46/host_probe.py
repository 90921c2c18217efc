"""Session 46: why the compiled 224 px step of hydra_vit_base is host-bound (108.6 ms a step for 70.4 ms of GPU work;
eager 73.1 for 71.5). After compiling and warming up, the median step time (synchronised each step) and the host
time to enqueue its forward, backward and optimizer step, compiled and eager in one process; then compiled with a
0.1 ms GIL switch interval and with the garbage collector frozen and off; the process's threads and what each runs
mid-step. `python host_probe.py [MODEL IMG_SIZE BATCH DEVICE]` (default hydra_vit_base 224 128 cuda; a CPU run checks
the script: synchronising and autocast are then no-ops on the CPU's side)."""
import gc
import json
import statistics
import sys
import threading
import time
import traceback

import timm
import torch
import torch.nn.functional as F

import hydra_vision  # noqa: F401  (registers the models)

name, img_size, batch, device = (sys.argv[1:] + ["hydra_vit_base", "224", "128", "cuda"][len(sys.argv) - 1:])[:4]
cuda = device == "cuda"
model = timm.create_model(name, img_size=int(img_size)).to(device).train()
net = torch.compile(model)
x = torch.randn(int(batch), 3, int(img_size), int(img_size), device=device)
y = torch.randint(0, 1000, (int(batch),), device=device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
synchronize = torch.cuda.synchronize if cuda else (lambda: None)


def step(module=net, phases=None):
    """One training step of `module` (the compiled net or the eager model); with `phases`, append the host time
    (ms, no synchronisation) of its forward, backward and optimizer parts."""
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        loss = F.cross_entropy(module(x), y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if phases is not None:
        phases.append((1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (time.perf_counter() - t2)))


def measure(label, n=12, module=net):
    walls, phases = [], []
    for _ in range(n):
        synchronize()
        t0 = time.perf_counter()
        step(module, phases)
        synchronize()
        walls.append(1e3 * (time.perf_counter() - t0))
    host = {name: round(statistics.median(p[i] for p in phases), 2)
            for i, name in enumerate(("host_forward_ms", "host_backward_ms", "host_optimizer_ms"))}
    print(json.dumps({"case": label, "wall_ms": round(statistics.median(walls), 2), **host,
                      "gc_counts": gc.get_count()}), flush=True)


t = time.perf_counter()
for _ in range(3):
    step()
synchronize()
print(json.dumps({"compile_and_warmup_s": round(time.perf_counter() - t, 1)}), flush=True)
measure("baseline")
measure("eager_same_process", module=model)
stacks = {}


def sample():
    time.sleep(0.03)
    for ident, frame in sys._current_frames().items():
        stacks[ident] = "".join(traceback.format_stack(frame)[-6:])


sampler = threading.Thread(target=sample)
sampler.start()
step()
sampler.join()
synchronize()
for th in threading.enumerate():
    print("THREAD", th.name, th.daemon, "\n", stacks.get(th.ident, "-")[-1500:], flush=True)
sys.setswitchinterval(1e-4)
measure("switch_interval_0.1ms")
sys.setswitchinterval(5e-3)
gc.collect()
gc.freeze()
gc.disable()
measure("gc_frozen_disabled")
gc.enable()
measure("gc_frozen_enabled")
