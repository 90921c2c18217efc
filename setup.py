"""Installs `hydra_vision_timm.pth` next to the package so a bare `import timm` sees hydra_vit_*.

The .pth line imports only the tiny `hydra_vision_timm_hook` module (no torch); see its docstring.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "hydra_vision_timm.pth"


class BuildPyWithPth(build_py):
    """build_py that also copies the .pth hook file to the root of the wheel."""

    def run(self):
        super().run()
        source = Path(__file__).parent / PTH_NAME
        self.copy_file(str(source), str(Path(self.build_lib) / PTH_NAME))


setup(cmdclass={"build_py": BuildPyWithPth})
