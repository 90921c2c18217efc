"""benchmarks/run_concurrent.sh's throughput step: one timed step per experiment, with the run's options."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Stands in for python3: records each call's arguments and appends a record named by --label.
STUB = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$CALLS"
label=""; out=""
while (( $# )); do case $1 in --label) label=$2; shift ;; --out) out=$2; shift ;; esac; shift; done
echo "{\\"kind\\": \\"train_step\\", \\"config\\": \\"$label\\", \\"images_per_s\\": 1.0}" >> "$out"
"""


def _measure(tmp_path: Path, *jobs: str) -> list[str]:
    bin_dir, runs = tmp_path / "bin", tmp_path / "runs"
    bin_dir.mkdir()
    runs.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(STUB)
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "RUNS": str(runs), "STOP": "600", "OPTIONS": "--device cpu"}
    script = '. benchmarks/run_concurrent.sh; START=$(date +%s); measure_throughput "$@"'
    result = subprocess.run(["bash", "-c", script, "_", *jobs], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    calls = tmp_path / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_one_step_per_experiment_with_its_options_but_seed_and_length(tmp_path: Path) -> None:
    calls = _measure(tmp_path,
                     "hydra_vit_tiny_ep100-s0=configs/imagewoof/hydra_vit_tiny.yaml --seed 0 --epochs 100 "
                     "--torchcompile --torchcompile-mode reduce-overhead",
                     "hydra_vit_tiny_ep100-s1=configs/imagewoof/hydra_vit_tiny.yaml --seed 1 --epochs 100 "
                     "--torchcompile --torchcompile-mode reduce-overhead",
                     "deit_tiny=configs/imagewoof/deit_tiny.yaml --amp-dtype float16")
    assert len(calls) == 2
    graphs, fp16 = calls
    assert "--label hydra_vit_tiny_ep100 " in graphs and "--configs configs/imagewoof/hydra_vit_tiny.yaml" in graphs
    assert graphs.endswith("--options --device cpu --torchcompile --torchcompile-mode reduce-overhead")
    assert "--label deit_tiny " in fp16 and fp16.endswith("--options --device cpu --amp-dtype float16")
    records = [json.loads(line) for line in (tmp_path / "runs" / "throughput.jsonl").read_text().splitlines()]
    assert [r["config"] for r in records] == ["hydra_vit_tiny_ep100", "deit_tiny"]


def test_experiments_timed_already_are_skipped(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "throughput.jsonl").write_text('{"kind": "train_step", "config": "deit_tiny", "images_per_s": 5.0}\n')
    assert _measure(tmp_path, "deit_tiny-s0=configs/imagewoof/deit_tiny.yaml --seed 0") == []


def _call_script(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Runs `body` after run_concurrent.sh and start_archived_call in tmp_path (a stand-in checkout: python3 and
    benchmarks/ab_branches.sh are stubs that record their working folder, environment and arguments)."""
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / ".ab" / "exp").mkdir(parents=True)
    bin_dir.mkdir()
    record = ('#!/usr/bin/env bash\n'
              'echo "$PWD|${PYTHONPATH:-}|${OUT:-}|${AB:-}|${AB_ARGS:-}|$*" >> "$CALLS"\necho done\n')
    for stub in (bin_dir / "python3", tmp_path / "benchmarks" / "ab_branches.sh"):
        stub.write_text(record)
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "OUT": str(out)}
    script = f'. {REPO}/benchmarks/run_concurrent.sh; start_archived_call tag; {body}; end_archived_call'
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, out


def test_packed_gpu_tests_runs_pytest_in_the_packed_tree_and_archives(tmp_path: Path) -> None:
    result, out = _call_script(tmp_path, "packed_gpu_tests exp 30 tests/a.py tests/b.py")
    cwd, pythonpath, _, _, _, args = (tmp_path / "calls").read_text().strip().split("|")
    tree = str(tmp_path / ".ab" / "exp")
    assert cwd == tree and pythonpath.split(":")[:2] == [tree, "/tmp/site"]
    assert args == "-m pytest tests/a.py tests/b.py -q -n 6 -p no:cacheprovider"
    assert result.stdout.strip() == "done"  # the log's last lines
    with tarfile.open(out / "tag.tgz") as archive:
        assert "w/gpu_tests.log" in archive.getnames()


def test_ab_run_gives_ab_branches_its_own_folder_and_options(tmp_path: Path) -> None:
    _, out = _call_script(tmp_path, 'AB=models AB_ARGS="--img-sizes 1024" ab_run r1024 30 main exp main')
    cwd, _, run_out, ab, ab_args, args = (tmp_path / "calls").read_text().strip().split("|")
    assert cwd == str(tmp_path) and run_out == str(out / "w" / "r1024")
    assert (ab, ab_args, args) == ("models", "--img-sizes 1024", "run main exp main")
    with tarfile.open(out / "tag.tgz") as archive:
        assert "w/r1024" in archive.getnames()


def test_packed_models_table_benchmarks_in_the_packed_tree_then_prints_the_table(tmp_path: Path) -> None:
    result, out = _call_script(tmp_path, "packed_models_table exp 30")
    bench, table = [line.split("|") for line in (tmp_path / "calls").read_text().splitlines()]
    tree = str(tmp_path / ".ab" / "exp")
    assert bench[0] == table[0] == tree and bench[1].split(":")[0] == table[1].split(":")[0] == tree
    assert bench[5].startswith("benchmarks/bench_models.py --models hydra_vit_base vit_base_patch16_224")
    assert bench[5].endswith(f"--out {out}/w/models.jsonl")
    assert table[5] == f"benchmarks/bench_models.py --table {out}/w/models.jsonl"
    assert result.stdout.strip() == "done"  # the table script's output; the benchmark's goes to models.log
    with tarfile.open(out / "tag.tgz") as archive:
        assert "w/models.log" in archive.getnames()
