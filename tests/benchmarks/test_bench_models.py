"""bench_models.py on CPU: the JSON lines of a tiny run, the FLOP count, and the --table ratios."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import timm
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_models.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cpu_run_writes_one_line_per_case(bench, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    out = tmp_path / "run.jsonl"
    models = ["hydra_vit_tiny", "deit_tiny_patch16_224"]
    assert bench.main(["--device", "cpu", "--models", *models, "--img-sizes", "32", "--batch-sizes", "2",
                       "--modes", "infer", "train", "--compile", "off", "--model-kwargs", "depth=2",
                       "--quick", "--kernel-times", "5", "--out", str(out)]) == 0
    assert torch.backends.cudnn.benchmark  # cuDNN times its algorithms, as timm's benchmark.py has it
    records = read_jsonl(out)
    assert records[0]["kind"] == "header" and records[0]["device"] == "cpu"
    assert records[0]["model_kwargs"] == {"depth": 2}
    cases = records[1:]
    assert [(r["model"], r["mode"]) for r in cases] == [(m, mode) for m in models for mode in ("infer", "train")]
    for r in cases:
        assert r["status"] == "ok", r
        assert (r["img_size"], r["batch"], r["compile"]) == (32, 2, False)
        assert r["ms"] > 0 and r["img_s"] == pytest.approx(2000 / r["ms"], rel=1e-3)
        assert r["peak_gib"] is None and r["mfu"] > 0
        assert {"ms_q20", "ms_q80", "params_m", "flops_img"} <= r.keys()
        assert "kernels_us" not in r  # a CUDA profile: not on the CPU
    infer, train = (r for r in cases if r["model"] == models[1])
    assert train["flops_img"] == 3 * infer["flops_img"]


def test_cold_start_times_only_the_first_case(bench, tmp_path: Path) -> None:
    out = tmp_path / "cold.jsonl"
    assert bench.main(["--device", "cpu", "--models", "hydra_vit_tiny", "deit_tiny_patch16_224", "--img-sizes", "32",
                       "--batch-sizes", "2", "--modes", "train", "--compile", "off", "--model-kwargs", "depth=1",
                       "--cold-start", "--out", str(out)]) == 0
    header, record = read_jsonl(out)
    assert header["kind"] == "header"
    assert record["kind"] == "cold_start"
    assert (record["model"], record["img_size"], record["batch"], record["mode"]) == ("hydra_vit_tiny", 32, 2, "train")
    assert 0 < record["first_step_s"] <= record["process_s"]


def test_forward_flops_of_deit_match_the_hand_count(bench) -> None:
    """deit_tiny, depth 2, 32 px: 4 patches + cls = 5 tokens of width 192, 3 heads of 64, 1000 classes."""
    model = timm.create_model("deit_tiny_patch16_224", img_size=32, depth=2)
    T, D = 5, 192
    patch = 4 * 3 * 16 * 16 * D * 2
    block = T * D * 3 * D * 2 + 2 * (3 * T * T * 64 * 2) + T * D * D * 2 + 2 * T * D * 4 * D * 2
    assert bench.forward_flops(model, 32) == patch + 2 * block + D * 1000 * 2


def test_table_ratios_and_targets(bench, tmp_path: Path, capsys) -> None:
    header = {"kind": "header", "date": "2026-01-01", "device": "NVIDIA H100", "torch": "2.11", "triton": "3.6",
              "amp": "bf16", "peak_flops": 989e12}

    def case(model: str, img: int, mode: str, img_s: float, peak: float, mfu: float, status: str = "ok") -> dict:
        return {"kind": "case", "model": model, "img_size": img, "batch": 8, "mode": mode, "compile": True,
                "img_s": img_s, "peak_gib": peak, "mfu": mfu, "status": status, "gpu_ms": 8000 / (img_s or 1)}

    rows = [
        header,
        case("hydra_vit_base", 224, "train", 2000.0, 9.0, 0.3),
        case("vit_base_patch16_224", 224, "train", 2500.0, 10.0, 0.4),
        case("hydra_vit_base", 1024, "train", 100.0, 12.0, 0.2),
        case("vit_base_patch16_224", 1024, "train", 80.0, 10.0, 0.25),
        case("hydra_vit_tiny", 224, "infer", 9000.0, 1.5, 0.1),
        case("deit_tiny_patch16_224", 224, "infer", 12000.0, 1.0, 0.2),
        case("hydra_vit_small", 2048, "train", 0.0, 0.0, 0.0, "oom"),
        case("deit_small_patch16_224", 2048, "train", 5.0, 30.0, 0.1),
    ]
    path = tmp_path / "synthetic.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench.main(["--table", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    body = {tuple(c.strip() for c in line.strip("|").split("|")[:4]): [c.strip() for c in line.strip("|").split("|")]
            for line in lines if line.startswith("| hydra")}
    base224 = body[("hydra_vit_base / vit_base_patch16_224", "224", "train", "on")]
    assert base224[5:17] == ["2000.0", "2500.0", f"{2000 / 2500:.2f}", ">= 0.85, GiB <= 1", "no, mem yes",
                             "9.00", "10.00", f"{9 / 10:.2f}", "0.3", "0.4", "4.0", "3.2"]
    base1024 = body[("hydra_vit_base / vit_base_patch16_224", "1024", "train", "on")]
    assert base1024[7:10] == [f"{100 / 80:.2f}", ">= 1.3, GiB <= 1", "no, mem no"]
    tiny = body[("hydra_vit_tiny / deit_tiny_patch16_224", "224", "infer", "on")]
    assert tiny[7:10] == [f"{9000 / 12000:.2f}", "-", "-"] and tiny[12] == f"{1.5 / 1.0:.2f}"
    small = body[("hydra_vit_small / deit_small_patch16_224", "2048", "train", "on")]
    assert small[5:8] == ["OOM", "5.0", "-"]
    assert len(body) == 4


def test_bad_arguments_raise_clear_errors(bench, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.main(["--table", str(tmp_path / "missing.jsonl")])
    with pytest.raises(ValueError, match="key=value"):
        bench.parse_model_kwargs(["depth"])
    with pytest.raises(ValueError, match="one per image size"):
        bench.main(["--device", "cpu", "--img-sizes", "32", "64", "--batch-sizes", "1", "2", "3"])


def test_kernel_times_keep_the_largest_first() -> None:
    times = {"mm": 120.0, "conv": 30.5, "mix": 240.0, "norm": 30.0}
    assert list(_timing().largest(times, 3).items()) == [("mix", 240.0), ("mm", 120.0), ("conv", 30.5)]
    assert _timing().largest(times, 9) == {"mix": 240.0, "mm": 120.0, "conv": 30.5, "norm": 30.0}


def test_gpu_wait_summary_counts_kernel_time_once_and_lists_cuda_calls_by_host_time() -> None:
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    timing = _timing()
    assert timing.busy_time([(5, 15), (0, 10), (20, 30), (21, 22)]) == 25

    def event(start: float, end: float, device: DeviceType) -> SimpleNamespace:
        return SimpleNamespace(time_range=SimpleNamespace(start=start, end=end), device_type=device)

    def average(key: str, count: int, self_us: float) -> SimpleNamespace:
        return SimpleNamespace(key=key, count=count, self_cpu_time_total=self_us)

    text = timing.gpu_wait_summary(
        [event(0, 1000, DeviceType.CUDA), event(500, 1000, DeviceType.CUDA), event(3000, 4000, DeviceType.CUDA),
         event(0, 9000, DeviceType.CPU)],
        [average("cudaLaunchKernel", 10, 50.0), average("aten::mm", 5, 100.0),
         average("cudaStreamSynchronize", 3, 9000.0)])
    lines = text.splitlines()
    assert lines[1] == "GPU busy 2.0 ms of a 4.0 ms window (50%)"
    assert [line.split()[0] for line in lines[2:]] == ["cudaStreamSynchronize", "cudaLaunchKernel"]


def _timing():
    spec = importlib.util.spec_from_file_location("timing", SCRIPT.parent / "timing.py")
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    return timing


def test_sync_report_counts_each_synchronising_place_and_restores_the_mode(monkeypatch) -> None:
    import warnings

    timing = _timing()
    modes = []

    def set_mode(mode: str) -> None:
        modes.append(mode)
        if mode == "warn":  # as torch does: a warning that the mode is a prototype, which is not a sync
            warnings.warn("Synchronization debug mode is a prototype feature")

    monkeypatch.setattr(timing.torch.cuda, "set_sync_debug_mode", set_mode)
    monkeypatch.setattr(timing.torch.cuda, "synchronize", lambda: None)

    def sync_here() -> None:
        warnings.warn("called a synchronizing CUDA operation")

    def step() -> None:
        for _ in range(2):
            sync_here()  # one place, twice a step
        warnings.warn("called a synchronizing CUDA operation")  # another place: its own entry

    text = timing.sync_report(step, "tiny", steps=3)
    lines = text.splitlines()
    assert lines[0] == "# synchronising calls tiny (3 steps): 9 in 2 places"
    counts = [line.split(" x ")[0] for line in lines if line.startswith("## ")]
    assert counts == ["## 6", "## 3"]
    assert "sync_here" in text.split("## 3")[0]
    assert modes == ["warn", "default"]


def test_host_ms_times_the_call_from_a_synchronised_start_without_waiting_after_it() -> None:
    events = []

    def step():
        events.append("step")
        time.sleep(0.004)

    ms = _timing().host_ms(step, steps=3, synchronize=lambda: events.append("sync"))
    assert events == ["sync", "step"] * 3 + ["sync"]
    assert 4.0 <= ms < 40.0
