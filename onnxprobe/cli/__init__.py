"""The `onnxprobe` command: one module per subcommand; bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from onnxprobe import __version__
from onnxprobe.errors import ProbeError

COMMANDS = ("demo", "layers", "activations", "backprop", "optimize", "maxact", "atlas", "attribute", "view")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, like ours
        self.exit(2, f"onnxprobe: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="onnxprobe", description="See what any CNN exported to ONNX has learned.",
                     epilog="start with 'onnxprobe demo' (the bundled ImageNet network); "
                            "'onnxprobe COMMAND --help' shows each command's options and examples")
    parser.add_argument("--version", action="version", version=f"onnxprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"onnxprobe.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"onnxprobe.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
        _document(sub.choices[name], module)
    return parser


def _document(parser: argparse.ArgumentParser, module) -> None:
    """A command's --help: its module's DESCRIPTION (what it does) and EXAMPLES (the epilog),
    printed as written."""
    parser.description = getattr(module, "DESCRIPTION", None) or parser.description
    parser.epilog = getattr(module, "EXAMPLES", None) or parser.epilog
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the usage and the list of commands, as argparse does for a missing argument
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ProbeError as exc:
        print(f"onnxprobe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("onnxprobe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug on our side: still one line unless asked for the traceback
        if os.environ.get("ONNXPROBE_DEBUG"):
            raise
        print(f"onnxprobe: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:400]} "
              "(set ONNXPROBE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
