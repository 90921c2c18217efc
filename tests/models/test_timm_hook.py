"""The .pth import hook: a bare `import timm` sees hydra_vit_*, cheaply, unless switched off.

Each case runs a fresh interpreter. The repo's `hydra_vision_timm.pth` is processed with
`site.addsitedir` from a temporary folder, with the hook of any installed copy disabled at
start-up, so the tests hold whether or not the .pth is installed in site-packages.
"""
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

PTH = Path(__file__).resolve().parents[2] / "hydra_vision_timm.pth"
ENV_VAR = "HYDRA_VISION_NO_TIMM_HOOK"


def _run(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def _with_pth(tmp_path: Path, body: str, enable: bool) -> subprocess.CompletedProcess:
    """Starts with the installed hook off, then processes the repo's .pth (on or off per `enable`)."""
    shutil.copy(PTH, tmp_path / PTH.name)
    code = (
        "import os, site, sys\n"
        + ("del os.environ['HYDRA_VISION_NO_TIMM_HOOK']\n" if enable else "")
        + f"site.addsitedir({str(tmp_path)!r})\n"
        + body
    )
    return _run(code, {ENV_VAR: "1"})


def test_pth_registers_models_after_import_timm(tmp_path):
    result = _with_pth(tmp_path, (
        "assert 'torch' not in sys.modules and 'hydra_vision' not in sys.modules\n"
        "import timm\n"
        "assert 'hydra_vision' in sys.modules\n"
        "m = timm.create_model('hydra_vit_base', device='meta')\n"
        "print(type(m).__name__, len(m.blocks), timm.list_models('hydra*'))\n"
    ), enable=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].startswith("HydraVisionTransformer 24 ['hydra_vit_base'")


def test_env_var_switches_the_hook_off(tmp_path):
    result = _with_pth(tmp_path, (
        "import timm\n"
        "assert 'hydra_vision' not in sys.modules\n"
        "print(timm.list_models('hydra*'))\n"
        "import hydra_vision\n"
        "print(timm.list_models('hydra*'))\n"
    ), enable=False)
    assert result.returncode == 0, result.stderr
    names = "['hydra_vit_base', 'hydra_vit_large', 'hydra_vit_small', 'hydra_vit_tiny']"
    assert result.stdout.split("\n")[:2] == ["[]", names]


def test_interpreter_start_imports_no_torch(tmp_path):
    result = _with_pth(tmp_path, (
        "import hydra_vision_timm_hook\n"
        "print(sorted(m for m in ('torch', 'timm', 'hydra_vision') if m in sys.modules))\n"
    ), enable=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    plain = _run("import sys; print(sorted(m for m in ('torch', 'timm', 'hydra_vision') if m in sys.modules))")
    assert plain.returncode == 0 and plain.stdout.strip() == "[]"


def test_import_hydra_vision_first_also_registers():
    result = _run("import hydra_vision, timm; print(timm.is_model('hydra_vit_tiny'))", {ENV_VAR: "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.skipif(
    not any((Path(p) / PTH.name).exists() for p in site.getsitepackages() + [site.getusersitepackages()]),
    reason="hydra_vision_timm.pth is not installed in this environment",
)
def test_installed_hook():
    result = _run("import timm; print(type(timm.create_model('hydra_vit_tiny', device='meta')).__name__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HydraVisionTransformer"
