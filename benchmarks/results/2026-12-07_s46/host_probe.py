"""Session 46: why the compiled 224 px step of hydra_vit_base is host-bound (108.6 ms a step for 70.4 ms of GPU work;
eager 73.1 for 71.5). After compiling and warming up, the median step time (synchronised each step) and the host
time to enqueue one step, under: nothing changed; the garbage collector off (gc.freeze then gc.disable); a 0.1 ms GIL
switch interval. Then the process's threads and what each runs mid-step."""
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

model = timm.create_model("hydra_vit_base").cuda().train()
net = torch.compile(model)
x = torch.randn(128, 3, 224, 224, device="cuda")
y = torch.randint(0, 1000, (128,), device="cuda")
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def measure(label, n=12):
    walls, hosts = [], []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        walls.append(1e3 * (time.perf_counter() - t0))
        hosts.append(1e3 * (t1 - t0))
    print(json.dumps({"case": label, "wall_ms": round(statistics.median(walls), 2),
                      "host_ms": round(statistics.median(hosts), 2), "gc_counts": gc.get_count()}), flush=True)


t = time.perf_counter()
for _ in range(3):
    step()
torch.cuda.synchronize()
print(json.dumps({"compile_and_warmup_s": round(time.perf_counter() - t, 1)}), flush=True)
measure("baseline")
stacks = {}


def sample():
    time.sleep(0.03)
    for ident, frame in sys._current_frames().items():
        stacks[ident] = "".join(traceback.format_stack(frame)[-6:])


sampler = threading.Thread(target=sample)
sampler.start()
step()
sampler.join()
torch.cuda.synchronize()
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
