"""An error in a run whose loader workers are alive still ends the process. The workers ignore SIGTERM (so that a
scheduler's signal to the process group reaches the trainer alone), and multiprocessing's exit handler ends daemonic
children with SIGTERM before joining them: without the trainer ending them itself, the process would wait forever."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ._helpers import subprocess_env, tiny_run_args

FAILING_RUN = """
import sys
from hydra_vision.training import main, trainer

def fail(*args, **kwargs):
    raise RuntimeError("plotting failed on purpose")

trainer.plot_curves = fail  # raised after the first evaluation, while its loader's worker may still be alive
sys.exit(main(sys.argv[1:]))
"""


def test_an_error_after_evaluation_ends_the_process_and_its_loader_workers(image_folder: Path,
                                                                            tmp_path: Path) -> None:
    script = tmp_path / "failing_run.py"
    script.write_text(FAILING_RUN)
    args = tiny_run_args(image_folder, tmp_path, "fails", "-j", "1", "--epochs", "1")
    result = subprocess.run([sys.executable, str(script), *args], env=subprocess_env(), capture_output=True, text=True,
                            timeout=150)
    assert result.returncode == 1
    assert "RuntimeError: plotting failed on purpose" in result.stderr
