"""User-facing errors: each carries one line that the CLI prints before exiting with status 2."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters (escape sequences, bidi overrides, newlines)
    in names taken from a model or a file become visible escapes like \\x1b."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                        str(text))


class ProbeError(Exception):
    """A problem with what the user gave us (a file, a flag, a layer name): never a bug."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(printable(" ".join(str(message).split())))  # always one line, no raw control characters


class ModelError(ProbeError):
    """The model file is missing, unreadable, invalid or uses something we cannot run."""


class UnsupportedOpsError(ModelError):
    """Ops on the path to the requested gradient that have no backward rule."""

    def __init__(self, ops: list[tuple[str, str]]):
        self.ops = sorted(set(ops))
        listed = ", ".join(f"{op} (node '{name}')" for op, name in self.ops)
        super().__init__(f"no backward rule for {len(self.ops)} op(s) on the path to the input: {listed}")


class InputError(ProbeError):
    """An image, video, camera, array or shape given by the user does not fit."""


class UsageError(ProbeError):
    """A flag or name that does not exist or does not fit the model."""


class ParameterError(UsageError):
    """A value given for a named parameter of a library call does not fit. The message names each
    parameter in braces, `ParameterError("{batch} must be at least 1, got 0", "batch")`: `str()` is
    the library's words (the parameter's own name: "batch must be at least 1, got 0"), and a front
    end names the parameters its own way with `in_words(names)` (the command line: its flags, from
    the one table onnxprobe.cli.flags.FLAGS)."""

    def __init__(self, template: str, *params: str):
        self.template = str(template)
        self.params = tuple(params)
        super().__init__(self.in_words({}))

    def in_words(self, names: dict[str, str]) -> str:
        """The message with each parameter spelled as `names` says (its own name when absent)."""
        text = self.template
        for param in self.params:
            text = text.replace("{" + param + "}", names.get(param, param))
        return printable(" ".join(text.split()))

    def __reduce__(self):  # pickled (a Dask worker's error) with its parameters, not just the line
        return self.__class__, (self.template, *self.params)


class OutputError(ProbeError):
    """An output path that cannot be written (missing folder, no permission, full disk, an input)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (by the CLI's handler) so that every `finally` and staged write
    is cleaned up; the CLI reports it in one line with exit status 143."""
