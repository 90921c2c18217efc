"""Session 47: the host cost of Python's cyclic garbage collector in a training step, eager and compiled. Call 1
found the compiled 224 px step 106 ms (70 GPU ms) and the eager step in the same process 97 ms (73 in a process that
never compiled), and 90 ms compiled with the heap frozen (`gc.freeze()`). One process: the eager step (nothing
compiled yet), then after `gc.collect(); gc.freeze()`; then the compiled step, and again after a second freeze. Each
case: median wall time of synchronised steps and the host's time to enqueue forward, backward and optimizer.
`python gc_probe.py [MODEL IMG_SIZE BATCH]` (default hydra_vit_base 224 128; CUDA)."""
import gc
import json
import statistics
import sys
import time

import timm
import torch
import torch.nn.functional as F

import hydra_vision  # noqa: F401  (registers the models)

name, img_size, batch = (sys.argv[1:] + ["hydra_vit_base", "224", "128"][len(sys.argv) - 1:])[:3]
model = timm.create_model(name, img_size=int(img_size)).cuda().train()
x = torch.randn(int(batch), 3, int(img_size), int(img_size), device="cuda")
y = torch.randint(0, 1000, (int(batch),), device="cuda")
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def measure(label: str, net: torch.nn.Module, n: int = 15) -> None:
    for _ in range(3):  # compile, autotune, allocator warm-up
        step(net)
    walls, phases = [], []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        phases.append(step(net))
        torch.cuda.synchronize()
        walls.append(1e3 * (time.perf_counter() - t0))
    host = {key: round(statistics.median(p[i] for p in phases), 2)
            for i, key in enumerate(("host_forward_ms", "host_backward_ms", "host_optimizer_ms"))}
    print(json.dumps({"case": label, "wall_ms": round(statistics.median(walls), 2), **host,
                      "gc_objects": len(gc.get_objects()), "gc_frozen": gc.get_freeze_count()}), flush=True)


def step(net: torch.nn.Module) -> tuple[float, float, float]:
    """One training step; the host's time (ms, unsynchronised) for its forward, backward and optimizer parts."""
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x), y)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (time.perf_counter() - t2)


measure("eager", model)
gc.collect()
gc.freeze()
measure("eager_frozen", model)
gc.unfreeze()
compiled = torch.compile(model)
measure("compiled", compiled)
gc.collect()
gc.freeze()
measure("compiled_frozen", compiled)
measure("eager_after_compile_frozen", model)
