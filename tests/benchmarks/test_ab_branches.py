"""ab_branches.sh's local half: packing a branch's source tree, and the errors before any device work."""
from __future__ import annotations

import os
import subprocess
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
