"""experiment_table.py (and mixer_table.py, which shares run_records.py) on synthetic runs folders."""
from __future__ import annotations

import csv
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
import timm
import yaml

import hydra_vision  # noqa: F401  (registers hydra_vit_*)
from hydra_vision.cli.models import model_flops

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
KWARGS = {"img_size": 32, "patch_size": 4, "depth": 2}
# hydra_vit_tiny seeds 0, 1, 2 (seed 2 stopped after 2 of 3 epochs), deit_tiny seed 0:
# per run, per epoch (top1, top5, ema_top1, ema_top5)
CURVES = {
    "hydra_vit_tiny-s0": [(20, 60, 18, 55), (31, 70, 25, 66), (30, 75, 28, 71)],
    "hydra_vit_tiny-s1": [(22, 61, 19, 56), (29, 71, 27, 67), (32, 76, 30, 70)],
    "hydra_vit_tiny-s2": [(21, 62, 20, 57), (34, 72, 26, 68)],
    "deit_tiny-s0": [(15, 50, 14, 45), (18, 55, 17, 52), (24, 64, 21, 60)],
}
JOBS = "name\texit\twall_s\nhydra_vit_tiny-s0\t124\t100\nhydra_vit_tiny-s0\t0\t50\nhydra_vit_tiny-s1\t0\t160\n" \
       "hydra_vit_tiny-s2\t124\t170\ndeit_tiny-s0\t0\t90\ndeit_tiny-s1\t-\t0\n"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table():
    return _load("experiment_table")


def _write_run(root: Path, name: str, model: str, seed: int, curve: list[tuple], epochs: int = 3,
               extra_kwargs: dict | None = None) -> None:
    run = root / name
    run.mkdir(parents=True)
    args = {"model": model, "model_kwargs": {**KWARGS, **(extra_kwargs or {})}, "gp": None, "img_size": 32,
            "epochs": epochs, "seed": seed, "num_classes": 10}
    (run / "args.yaml").write_text(yaml.safe_dump(args))
    with (run / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "eval_ema_loss",
                         "eval_ema_top1", "eval_ema_top5", "lr"])
        for epoch, (t1, t5, e1, e5) in enumerate(curve):
            writer.writerow([epoch, 2.0, 1.5, t1, t5, 1.6, e1, e5, 1e-3])
    (run / "steps.csv").write_text("epoch,step,loss,lr,samples_per_s\n0,1,2.3,1e-4,10.0\n0,2,2.2,2e-4,100.0\n"
                                   "1,3,2.1,3e-4,300.0\n")


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for name, curve in CURVES.items():
        _write_run(root, name, name.rsplit("-s", 1)[0].replace("deit_tiny", "deit_tiny_patch16_224"),
                   int(name[-1]), curve)
    (root / "jobs.tsv").write_text(JOBS)
    lines = [{"kind": "header"}, {"kind": "train_step", "config": "hydra_vit_tiny", "images_per_s": 1234.5},
             {"kind": "train_step", "config": "deit_tiny", "error": "OutOfMemoryError"}]
    (root / "throughput.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_per_run_rows(table, runs: Path, tmp_path: Path) -> None:
    assert table.main(["--runs", str(runs), "--csv", str(tmp_path / "r.csv")]) == 0
    rows = _read_csv(tmp_path / "r.csv")
    assert sorted(rows) == sorted([*CURVES, "deit_tiny-s1"])
    s0, s2, deit = rows["hydra_vit_tiny-s0"], rows["hydra_vit_tiny-s2"], rows["deit_tiny-s0"]
    # last epoch, and the best over the epochs (s0's best model top-1 is epoch 1, not the last)
    assert [float(s0[k]) for k in ("top1", "top5", "ema_top1", "ema_top5", "best_top1", "best_ema_top1")] == \
        [30, 75, 28, 71, 31, 28]
    assert (s0["epochs"], s0["planned_epochs"], s0["status"], float(s0["wall_s"])) == ("3", "3", "ok", 150.0)
    assert (s2["epochs"], s2["status"], float(s2["best_top1"])) == ("2", "stopped at deadline", 34.0)
    assert float(s0["img_s_alone"]) == 1234.5 and deit["img_s_alone"] == ""
    assert float(s0["img_s_in_run"]) == 200.0  # median of the logged rates without the first window
    model = timm.create_model("hydra_vit_tiny", num_classes=10, device="meta", **KWARGS)
    assert float(s0["params_m"]) == round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    assert float(s0["gflops"]) == round(model_flops(model, (32, 32)) / 1e9, 2)


def test_table_gives_mean_and_sample_std_over_seeds(table, runs: Path, tmp_path: Path) -> None:
    md = tmp_path / "t.md"
    table.main(["--runs", str(runs), "--md", str(md)])
    lines = [line for line in md.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    hydra, deit = rows["hydra_vit_tiny"], rows["deit_tiny"]

    def expect(values: list[float]) -> str:
        return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"

    assert hydra["top-1"] == expect([30, 32, 34]) == "32.00 ± 2.00"
    assert hydra["EMA top-1"] == expect([28, 30, 26])
    assert hydra["EMA top-5"] == expect([71, 70, 68])
    assert hydra["best top-1"] == expect([31, 32, 34])
    assert hydra["wall (s)"] == f"{statistics.fmean([150, 160, 170]):.0f} ± {statistics.stdev([150, 160, 170]):.0f}"
    assert (hydra["seeds"], hydra["epochs"]) == ("3", "2-3/3")
    assert hydra["status"] == "2 ok, 1 stopped at deadline"
    # deit_tiny-s1 never started: counted, no accuracy
    assert (deit["seeds"], deit["epochs"], deit["top-1"], deit["EMA top-1"]) == ("2", "0-3/3", "24.00", "21.00")
    assert (deit["status"], deit["img/s alone"]) == ("1 ok, 1 not started (deadline)", "")
    assert deit["model"].startswith("deit_tiny_patch16_224 (") and "patch_size=4" in deit["model"]


def test_band_is_mean_min_max_over_the_seeds_that_reached_each_epoch(table, runs: Path) -> None:
    group = [r for r in table.find_runs([runs]) if r.experiment == "hydra_vit_tiny"]
    epochs, mean, low, high = table.band(group)
    assert epochs == [0, 1, 2]
    assert mean == pytest.approx([19, 26, 29]) and low == [18, 25, 28] and high == [20, 27, 30]


def test_png_is_written(table, runs: Path, tmp_path: Path) -> None:
    png = tmp_path / "ema.png"
    table.main(["--runs", str(runs), "--png", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_plot_puts_epochs_at_images_over_rate_alone(table, runs: Path, tmp_path: Path, monkeypatch) -> None:
    png = tmp_path / "time.png"
    options = ["--runs", str(runs), "--time-png", str(png), "--epoch-images", "1000",
               "--rate", "hydra_vit_tiny=500", "deit_tiny=2000"]
    table.main(options)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    calls = []
    monkeypatch.setattr(table, "plot", lambda groups, out, seconds_per_epoch=None: calls.append(seconds_per_epoch))
    table.main(options)
    assert calls == [{"hydra_vit_tiny": 2.0, "deit_tiny": 0.5}]  # seconds per epoch = images / img/s
    with pytest.raises(SystemExit):
        table.main(["--runs", str(runs), "--time-png", str(png)])


def test_copied_summaries_alone_give_the_accuracy_columns(table, runs: Path, tmp_path: Path) -> None:
    copied = tmp_path / "out"
    for name in CURVES:
        (copied / name).mkdir(parents=True)
        (copied / name / "summary.csv").write_bytes((runs / name / "summary.csv").read_bytes())
    table.main(["--runs", str(copied), "--csv", str(tmp_path / "c.csv")])
    rows = _read_csv(tmp_path / "c.csv")
    assert sorted(rows) == sorted(CURVES)
    row = rows["hydra_vit_tiny-s1"]
    assert (float(row["top1"]), row["model"], row["params_m"], row["status"]) == (32.0, "", "", "not run")


def test_bad_input_is_named(table, runs: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="runs folder not found"):
        table.main(["--runs", str(tmp_path / "missing")])
    other = tmp_path / "other"
    _write_run(other, "deit_tiny-s0", "deit_tiny_patch16_224", 0, CURVES["deit_tiny-s0"])
    with pytest.raises(ValueError, match="'deit_tiny-s0' is in both"):
        table.main(["--runs", str(runs), str(other)])
    mixed = tmp_path / "mixed"
    _write_run(mixed, "add-s0", "hydra_vit_tiny", 0, CURVES["deit_tiny-s0"], extra_kwargs={"mixer": "add"})
    _write_run(mixed, "add-s1", "hydra_vit_tiny", 1, CURVES["deit_tiny-s0"], extra_kwargs={"mixer": "add_diag"})
    with pytest.raises(ValueError, match="runs of 'add' differ"):
        table.main(["--runs", str(mixed)])


def test_mixer_table_reads_the_shared_job_records(tmp_path: Path) -> None:
    mixer_table = _load("mixer_table")
    runs = tmp_path / "mixer_runs"
    _write_run(runs, "add", "hydra_vit_tiny", 0, CURVES["hydra_vit_tiny-s2"], epochs=10)
    (runs / "jobs.tsv").write_text("name\texit\twall_s\nadd\t124\t400\ncausal\t-\t0\nmult\t1\t5\n")
    jobs = mixer_table.read_jobs(runs)
    row = mixer_table.row("add", runs, {"add": 99.0}, jobs, None)
    assert (row["epochs"], row["top1_last"], row["top1_best"], row["status"]) == ("2/10", 34.0, 34.0,
                                                                                   "stopped at deadline")
    assert mixer_table.row("causal", runs, {}, jobs, None)["status"] == "not started (deadline)"
    assert mixer_table.row("mult", runs, {}, jobs, None)["status"] == "failed (exit 1, see mult.log)"
    assert mixer_table.row("dense", runs, {}, jobs, None)["status"] == "not run"
