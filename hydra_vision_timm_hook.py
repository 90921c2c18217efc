"""Registers hydra_vit_* in timm's model registry right after `import timm` finishes.

Installed with a one-line .pth file so that timm's own scripts (train.py, validate.py,
benchmark.py) accept `--model hydra_vit_base` without importing hydra_vision themselves.
This module imports nothing heavy: it only puts a finder on `sys.meta_path` that wraps
timm's loader; torch and hydra_vision are imported only when the process imports timm.
Set HYDRA_VISION_NO_TIMM_HOOK=1 to switch it off.
"""
import importlib.abc
import importlib.util
import os
import sys

DISABLE_ENV = "HYDRA_VISION_NO_TIMM_HOOK"


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """Finds `timm` through the other finders and runs `import hydra_vision` after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the other finders (site-packages, editable installs)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                import hydra_vision  # noqa: F401  (registers the models)
            except Exception as error:  # a broken plugin must never break timm itself
                print(f"hydra_vision: could not register models with timm: {error!r}", file=sys.stderr)

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Adds the finder once, unless disabled or timm is already imported."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return
    if "timm" in sys.modules or any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RegisterAfterTimm())
