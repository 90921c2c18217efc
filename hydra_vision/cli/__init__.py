"""The `hydra-vision` command: one subcommand per module in this package.

Each subcommand module defines `add_arguments(parser)` and `run(args) -> int`, and a
one-line module docstring used as its help text.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "demo": "hydra_vision.cli.demo",
    "models": "hydra_vision.cli.models",
    "validate": "hydra_vision.cli.validate",
    "extract": "hydra_vision.cli.extract",
    "knn": "hydra_vision.cli.knn",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hydra-vision", description="Hydra vision backbones for timm.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = subparsers.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())
