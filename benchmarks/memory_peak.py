"""What is live on the GPU at a training step's memory peak, and where it was allocated.

Records one training step (after warm-up) with torch.cuda.memory's allocation history (Python
stacks), replays the trace's alloc / free events to the moment the step's allocated bytes peak,
and groups the blocks live at that moment by the innermost frame of this project, timm, Inductor's
generated code or the benchmark (else the innermost frame): one JSON line per site (bytes, blocks,
site), after one header line with the peak. Blocks allocated before the step (weights, optimizer
state, the batch) are not in the trace; the header gives them as `resident_gib`.

    python benchmarks/memory_peak.py [--model hydra_vit_base] [--img-size 224] [--batch 128]
        [--compile off|on|reduce-overhead] [--rows 25]

Needs CUDA (the allocation history is the CUDA caching allocator's).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import COMPILE_MODES, NUM_CLASSES, make_step  # noqa: E402

SITE_MARKERS = ("hydra_vision", "/kernels/", "/timm/", "torchinductor", "/benchmarks/")


def live_at_peak(events: list[dict]) -> tuple[int, list[dict]]:
    """Replays alloc / free events (torch.cuda.memory trace entries: action, addr, size): the peak of the
    bytes allocated after the first event and the alloc events of the blocks live at that peak."""
    live: dict[int, dict] = {}
    total = peak = 0
    at_peak: list[dict] = []
    for event in events:
        if event["action"] == "alloc":
            live[event["addr"]] = event
            total += event["size"]
            if total > peak:
                peak, at_peak = total, list(live.values())
        elif event["action"] == "free_requested" and event["addr"] in live:
            total -= live.pop(event["addr"])["size"]
    return peak, at_peak


def site(frames: list[dict]) -> str:
    """`file:line function` of the innermost frame of a marked file (`SITE_MARKERS`), else the innermost;
    for Inductor's generated code `inductor graph <file>`: one row per compiled graph, whose buffers
    are allocated from hundreds of lines."""
    marked = [f for f in frames if any(marker in f["filename"] for marker in SITE_MARKERS)]
    frame = (marked or frames or [None])[0]  # innermost first, as torch.cuda.memory records them
    if frame is None:
        return "?"
    if "torchinductor" in frame["filename"]:
        return f"inductor graph {Path(frame['filename']).name}"
    return f"{Path(frame['filename']).name}:{frame['line']} {frame['name']}"


def by_site(blocks: list[dict]) -> list[dict]:
    """The blocks grouped by `site` of their frames, largest total first: {bytes, blocks, site}."""
    groups: dict[str, dict] = {}
    for block in blocks:
        key = site(block.get("frames", []))
        group = groups.setdefault(key, {"bytes": 0, "blocks": 0, "site": key})
        group["bytes"] += block["size"]
        group["blocks"] += 1
    return sorted(groups.values(), key=lambda g: -g["bytes"])


def record_step(model_name: str, img_size: int, batch: int, compile_mode: str | None) -> tuple[float, list[dict]]:
    """(GiB allocated before the step, trace events of one warmed-up training step on device 0)."""
    import timm

    import hydra_vision  # noqa: F401  (registers hydra_vit_*)

    device = torch.device("cuda")
    model = timm.create_model(model_name, img_size=img_size, num_classes=NUM_CLASSES).to(device)
    step = make_step(model, "train", compile_mode, batch, img_size, device)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated() / 2**30
    torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
    try:
        step()
        torch.cuda.synchronize()
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    return resident, snapshot["device_traces"][torch.cuda.current_device()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="hydra_vit_base")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--compile", default="off", choices=list(COMPILE_MODES))
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("memory_peak.py needs a CUDA device (it reads the CUDA caching allocator's history)")
    resident, events = record_step(args.model, args.img_size, args.batch, COMPILE_MODES[args.compile])
    peak, blocks = live_at_peak(events)
    print(json.dumps({"kind": "header", "model": args.model, "img_size": args.img_size, "batch": args.batch,
                      "compile": args.compile, "resident_gib": round(resident, 3),
                      "step_peak_gib": round(peak / 2**30, 3), "events": len(events)}))
    for group in by_site(blocks)[:args.rows]:
        print(json.dumps({**group, "gib": round(group["bytes"] / 2**30, 3)}))


if __name__ == "__main__":
    main(sys.argv[1:])
