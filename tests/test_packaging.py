"""pyproject.toml lists every package of the source tree, so that a (non-editable) install ships all of
them: a subpackage missing from the list imports from a checkout but not from an installed wheel."""
from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def _source_packages() -> set[str]:
    """Dotted names of the folders holding an __init__.py under hydra_vision/ and kernels/ (installed as
    hydra_vision.kernels), caches excluded."""
    found = set()
    for top, name in (("hydra_vision", "hydra_vision"), ("kernels", "hydra_vision.kernels")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            if "__pycache__" in rel.parts or (top == "hydra_vision" and rel.parts[:1] == ("kernels",)):
                continue
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_source_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert _source_packages() - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - _source_packages() == set(), "these listed packages have no folder with an __init__.py"
