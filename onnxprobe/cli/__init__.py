"""The `onnxprobe` command: one module per subcommand; bad input -> one line on stderr, exit 2.

Start-up is cheap: the command modules import only what their parsers need (the library is
imported when a command runs), `onnxprobe --help` imports no command's library and `onnxprobe
COMMAND ...` builds only that command's parser (tests/core/test_startup.py holds the modules each
may import). Ctrl-C from the package's first import on ends with one line and status 130
(`onnxprobe._interrupted_at_start` until the command starts working, then `_signals`)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from contextlib import contextmanager

from onnxprobe import __version__, _install_startup_interrupt, _launched_as_command
from onnxprobe.errors import OutputError, ProbeError, Terminated, UsageError, printable

COMMANDS = ("demo", "layers", "activations", "backprop", "optimize", "maxact", "atlas", "attribute", "view")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, like ours
        self.exit(2, f"onnxprobe: error: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser, with the options of `command` only ("*": every command's, None: none); the
    others are listed with their one-line SUMMARY, which is all `onnxprobe --help` shows."""
    parser = _Parser(prog="onnxprobe", description="See what any CNN exported to ONNX has learned.",
                     epilog="start with 'onnxprobe demo' (the bundled ImageNet network); "
                            "'onnxprobe COMMAND --help' shows each command's options and examples")
    parser.add_argument("--version", action="version", version=f"onnxprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"onnxprobe.cli.{name}")
        if command in ("*", name):
            module.register(sub)
            _document(sub.choices[name], module)
        else:
            sub.add_parser(name, help=module.SUMMARY)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    """The command argv names: the first word that is not an option (the top-level parser has
    only --help and --version, which take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _document(parser: argparse.ArgumentParser, module) -> None:
    """A command's --help: its module's DESCRIPTION (what it does) and EXAMPLES (the epilog, or
    `examples()` where the epilog is built from the library), printed as written."""
    parser.description = module.DESCRIPTION
    parser.epilog = module.examples() if hasattr(module, "examples") else module.EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


# arguments that name files the command reads, and files or folders it writes (see _check_paths)
INPUT_ARGS = (("model", "input model"), ("image", "input image"), ("images", "input image"), ("input_npy", "input array"),
              ("data", "dataset"), ("baseline", "baseline array"), ("labels", "labels file"), ("video", "input video"))
OUTPUT_ARGS = ("out", "grid", "npy", "screenshot", "save_dir")


def main(argv: list[str] | None = None) -> int:
    as_command = argv is None and _launched_as_command()
    if as_command:
        _install_startup_interrupt()  # (again: a caller may have changed it since the import)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_chosen_command(argv))
    if not argv:  # no command: the usage and the list of commands, as argparse does for a missing argument
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        with _signals(), _quiet_numpy(), _guarded_stdout():
            from onnxprobe.runtime.session import env_threads

            env_threads()  # a bad ONNXPROBE_THREADS: one line before any work
            inputs = _check_paths(args)
            if not getattr(args, "staged", True):  # the viewer writes snapshots while it runs
                return int(args.func(args) or 0)
            from onnxprobe.fsutil import staged

            with staged(inputs):
                code = int(args.func(args) or 0)
                _flush_stdout()
            return code
    except ProbeError as exc:
        from onnxprobe.cli.flags import in_cli_words

        _say(f"onnxprobe: error: {in_cli_words(exc)}")
        return exc.exit_code
    except Terminated:
        _say("onnxprobe: terminated (nothing half-written; run the command again to resume or redo it)")
        return 143
    except KeyboardInterrupt:
        return _interrupted(as_command)
    except BrokenPipeError:
        _silence_stdout(sys.__stdout__)
        return 0
    except Exception as exc:  # a bug on our side: still one line unless asked for the traceback
        if _INTERRUPT.is_set():  # Ctrl-C inside a C extension's import surfaces as its ImportError
            return _interrupted(as_command)
        if os.environ.get("ONNXPROBE_DEBUG"):
            raise
        _say(f"onnxprobe: internal error: {type(exc).__name__}: {printable(' '.join(str(exc).split()))[:400]} "
             "(set ONNXPROBE_DEBUG=1 for a traceback)")
        return 1


def _check_paths(args) -> list[tuple[str, str]]:
    """The command's input files, which no output may replace: an output flag naming one of them
    is refused before any work (a typo like `--out MODEL` must not destroy the model)."""
    inputs = []
    for name, what in INPUT_ARGS:
        value = getattr(args, name, None)
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, str) and path and os.path.exists(path):
                inputs.append((path, what))
    for name in OUTPUT_ARGS:
        out = getattr(args, name, None)
        if not isinstance(out, str):
            continue
        from onnxprobe.fsutil import same_file

        for path, what in inputs:
            if same_file(out, path):
                if os.path.isdir(path):
                    raise UsageError(f"--{name.replace('_', '-')} {out} is the {what} folder; write the outputs outside "
                                     "it or into a new folder inside it")
                raise UsageError(f"--{name.replace('_', '-')} {out} is the {what}; refusing to overwrite an input")
    return inputs


_INTERRUPT = threading.Event()  # set by Ctrl-C while a command runs, whatever exception it turned into


def _interrupted(as_command: bool) -> int:
    """Ctrl-C: one line and status 130 (the staged output is already undone). The command itself
    leaves at once: a KeyboardInterrupt still pending in the interpreter's shutdown would end it by
    SIGINT (status -2) after the line."""
    _say("onnxprobe: interrupted (nothing half-written; run the command again to resume or redo it)")
    if as_command:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    return 130


@contextmanager
def _signals():
    """SIGTERM raises Terminated and SIGINT KeyboardInterrupt (even when started with Ctrl-C
    ignored), so that both end with one line and no partial file; restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    def interrupt(signum, frame):
        _INTERRUPT.set()
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, terminate)
    _INTERRUPT.clear()
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def _quiet_numpy():
    """Non-finite values are reported by the commands in one line; numpy's own RuntimeWarnings
    (invalid value, overflow, divide by zero, empty slices) must not reach the terminal."""
    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class _GuardedStream:
    """stdout whose write errors (a full disk, /dev/full) are a one-line OutputError, not a bug,
    and where control characters from names in a model (escape sequences) arrive escaped."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if isinstance(text, str):
            text = "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n"))
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            _silence_stdout(self._stream)
            raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def flush(self):
        try:
            return self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            _silence_stdout(self._stream)
            raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextmanager
def _guarded_stdout():
    original = sys.stdout
    sys.stdout = _GuardedStream(original) if original is not None else original
    try:
        yield
    finally:
        if isinstance(sys.stdout, _GuardedStream):
            sys.stdout = original


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _silence_stdout(stream=None) -> None:
    """Point the real stdout at /dev/null, so that the interpreter's last flush does not fail again."""
    stream = stream or sys.stdout
    try:
        if stream.fileno() != 1:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
