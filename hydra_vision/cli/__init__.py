"""The `hydra-vision` command: one subcommand per module in this package.

Each subcommand module defines `add_arguments(parser)` and `run(args) -> int`; only the
chosen one is imported, so `hydra-vision models` does not load the training stack. Bad input
(ValueError, TypeError, FileNotFoundError) prints its message and exits with 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "demo": "train, evaluate and extract features with hydra_vit_tiny on a generated image folder (CPU, ~1 min)",
    "models": "list the hydra_vit_* variants with params and GFLOPs",
    "validate": "evaluate a checkpoint (model or EMA weights) on an image folder",
    "extract": "extract pooled embeddings / feature maps of images to a .safetensors or .npy file",
    "knn": "k-NN (cosine, k=20, weighted) top-1/top-5 between train and val feature files",
}


def build_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand, built by its module."""
    parser = argparse.ArgumentParser(prog=f"hydra-vision {command}", description=SUBCOMMANDS[command])
    module = importlib.import_module(f"hydra_vision.cli.{command}")
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = argparse.ArgumentParser(
        prog="hydra-vision",
        description="Hydra vision backbones for timm.",
        epilog="commands:\n" + "\n".join(f"  {name:<10} {text}" for name, text in SUBCOMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("command", choices=list(SUBCOMMANDS), metavar="COMMAND", help="one of: " + ", ".join(SUBCOMMANDS))
    top.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the command (see COMMAND --help)")
    parsed = top.parse_args(argv[:1])
    args = build_parser(parsed.command).parse_args(argv[1:])
    try:
        return args._run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:  # bad input: its message, not a traceback
        print(f"hydra-vision {parsed.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
