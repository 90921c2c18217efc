"""Host time of a training step with no device work: what the CPU spends per step, measured on a CPU.

Each model trains on a tiny CPU batch (default 2 images of 32 px: 4 tokens), so the aten kernels
take microseconds and the step time is the host's share: Python, dispatch and autograd. The Triton
kernels are recorded, not run (the recorders of `kernel_registers.py`), so Hydra's launchers and
wrappers count but their kernels do not. Compare the result with the step time on a GPU: a GPU step
much longer than both this host time and the GPU's kernel time points at a synchronisation, not
at launch overhead. The launches themselves (the CUDA driver's share) are not included.

    python benchmarks/host_time.py [--models hydra_vit_tiny deit_tiny_patch16_224] [--steps 20]

One JSON line per model: host ms per step (forward and backward; the optimizer, one fused kernel set
on a GPU but real work on a CPU, is left out), Triton launches per step.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_registers import KERNELS, _Recorder  # noqa: E402

import hydra_vision  # noqa: E402,F401  (registers hydra_vit_*)


def host_ms_per_step(name: str, img_size: int, batch: int, steps: int) -> dict:
    """Mean host time of one training step over `steps` steps after 3 warm-up steps (Triton kernels recorded)."""
    launches: list = []
    patches = [mock.patch.object(mod, attr, _Recorder(kernel, getattr(mod, attr), launches))
               for kernel, (mod, attr) in KERNELS.items()]
    kwargs = {"backend": "triton"} if name.startswith("hydra") else {}
    with mock.patch.dict(os.environ, {"TRITON_INTERPRET": "1"}):  # lets backend='triton' take CPU tensors
        for p in patches:
            p.start()
        try:
            model = timm.create_model(name, img_size=img_size, num_classes=1000, **kwargs).train()
            x, y = torch.randn(batch, 3, img_size, img_size), torch.randint(0, 1000, (batch,))

            def step() -> None:
                F.cross_entropy(model(x), y).backward()
                model.zero_grad(set_to_none=True)

            for _ in range(3):
                step()
            launches.clear()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            seconds = (time.perf_counter() - start) / steps
        finally:
            for p in patches:
                p.stop()
    return {"model": name, "img_size": img_size, "batch": batch, "host_ms": round(seconds * 1e3, 2),
            "triton_launches": len(launches) // steps}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["hydra_vit_tiny", "deit_tiny_patch16_224"])
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    print(json.dumps({"kind": "header", "torch": torch.__version__, "cpus": os.cpu_count(),
                      "threads": torch.get_num_threads()}))
    for name in args.models:
        print(json.dumps(host_ms_per_step(name, args.img_size, args.batch, args.steps)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
