"""Session 47: where the host time of a training step goes, sampled by py-spy (native frames, every thread) instead
of cProfile (whose own-time figures under Python 3.12 were an artefact, session 46). Builds MODEL, compiles it or
not, warms up, then starts `py-spy record --pid` on itself and runs training steps for SECONDS; prints the median
step time and writes the collapsed stacks to OUT_FILE.
`python spy_steps.py compiled|eager OUT_FILE [MODEL IMG_SIZE BATCH SECONDS]` (defaults hydra_vit_base 224 128 12)."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import timm
import torch
import torch.nn.functional as F

import hydra_vision  # noqa: F401  (registers the models)

mode, out_file = sys.argv[1:3]
name, img_size, batch, seconds = (sys.argv[3:] + ["hydra_vit_base", "224", "128", "12"][len(sys.argv) - 3:])[:4]
cuda = torch.cuda.is_available()
device = "cuda" if cuda else "cpu"
model = timm.create_model(name, img_size=int(img_size)).to(device).train()
net = torch.compile(model) if mode == "compiled" else model
x = torch.randn(int(batch), 3, int(img_size), int(img_size), device=device)
y = torch.randint(0, 1000, (int(batch),), device=device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
synchronize = torch.cuda.synchronize if cuda else (lambda: None)


def cpu_ticks() -> dict:
    """utime + stime (clock ticks) and name of every process, from /proc."""
    ticks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        ticks[pid] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def step():
    with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for _ in range(3):
    step()
synchronize()


def run_steps(seconds: float) -> list[float]:
    """Synchronised training steps for `seconds`; their wall times (ms)."""
    walls, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        step()
        synchronize()
        walls.append(1e3 * (time.perf_counter() - t0))
    return walls


before, t_before = cpu_ticks(), time.perf_counter()
plain = run_steps(4.0)  # without py-spy: step time and which processes use the CPUs meanwhile
after, window = cpu_ticks(), time.perf_counter() - t_before
busy = sorted(((after[p][1] - before[p][1], p, after[p][0]) for p in after if p in before), reverse=True)[:8]
hz = os.sysconf("SC_CLK_TCK")
spy = next(c for c in (shutil.which("py-spy"), os.path.join(os.path.dirname(sys.executable), "py-spy"),
                        "/tmp/site/bin/py-spy") if c and os.path.exists(c))
recorder = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--native", "--threads", "--rate", "50",
                             "--duration", seconds, "--format", "raw", "--output", out_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
time.sleep(1.0)  # py-spy attached
sampled = run_steps(float(seconds) - 1.5)
_, err = recorder.communicate(timeout=120)
print(json.dumps({"mode": mode, "model": name, "steps": len(plain), "wall_ms": round(statistics.median(plain), 2),
                  "cpu_busy": [(name, pid, round(t / hz / window, 2)) for t, pid, name in busy],
                  "loadavg": os.getloadavg(), "sampled_steps": len(sampled),
                  "sampled_wall_ms": round(statistics.median(sampled), 2), "spy_rc": recorder.returncode,
                  "spy_err": err.decode()[-300:]}), flush=True)
