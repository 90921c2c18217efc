"""ab_branches.sh's local half: packing a branch's source tree, and the errors before any device work."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "ab_branches.sh"


def run(*args: str, ab_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "AB_DIR": str(ab_dir)}, cwd=ROOT)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_pack_writes_the_branch_tree(tmp_path):
    result = run("pack", "HEAD", ab_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    packed = tmp_path / "HEAD"
    for path in ("hydra_vision/__init__.py", "kernels/quasiseparable/triton_mix.py", "benchmarks/bench_mixer.py",
                 "pyproject.toml"):
        assert (packed / path).is_file(), path
    committed = subprocess.run(["git", "show", "HEAD:kernels/quasiseparable/triton_mix.py"], capture_output=True,
                               text=True, cwd=ROOT, check=True).stdout
    assert (packed / "kernels/quasiseparable/triton_mix.py").read_text() == committed


def test_run_names_a_branch_that_was_not_packed(tmp_path):
    result = run("run", "no-such-branch", ab_dir=tmp_path)
    assert result.returncode == 1 and "no packed tree for no-such-branch" in result.stderr


def test_unknown_mode(tmp_path):
    result = run("bench", "main", ab_dir=tmp_path)
    assert result.returncode == 2 and "pack or run" in result.stderr


def test_run_refuses_a_tree_that_imports_another_checkout(tmp_path):
    """A tree whose PYTHONPATH misses its own hydra_vision (here one packed without it) would time the installed
    package under the tree's name, so two trees would time the same code: run stops before any benchmark."""
    (tmp_path / "ab" / "stale").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the script runs python3
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "AB_DIR": str(tmp_path / "ab"), "WHEELS": "", "OUT": str(tmp_path / "out"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(SCRIPT), "run", "stale"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "stale imports hydra_vision.kernels from" in result.stderr and "not from its packed tree" in result.stderr
