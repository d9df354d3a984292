"""onnxprobe: see what any convolutional network exported to ONNX has learned."""

import os
import signal
import sys

__version__ = "0.1.0"


def _launched_as_command() -> bool:
    """Whether this process is the `onnxprobe` command (its console script or `python -m onnxprobe`),
    not a program that imports the package: only the command takes over Ctrl-C at import."""
    argv = getattr(sys, "orig_argv", [])
    if any(a == "-m" and b in ("onnxprobe", "onnxprobe.__main__") for a, b in zip(argv, argv[1:])):
        return True
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in ("onnxprobe", "onnxprobe.exe", "onnxprobe-script.py")


def _interrupted_at_start(signum, frame):
    """Ctrl-C before a command has started working (its imports, the parsing): nothing has been
    written, so one line and status 130 at once, from wherever the interpreter was (an import too).
    `onnxprobe.cli.main` hands Ctrl-C to the command when its work starts (staged output)."""
    try:
        os.write(2, b"onnxprobe: interrupted\n")
    finally:
        os._exit(130)


def _install_startup_interrupt() -> None:
    try:
        signal.signal(signal.SIGINT, _interrupted_at_start)
    except ValueError:  # not the main thread: the caller owns the signals
        pass


if _launched_as_command():  # the first thing the command runs (this package is imported first)
    _install_startup_interrupt()
