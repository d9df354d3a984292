"""onnxprobe: see what any convolutional network exported to ONNX has learned.

From Python (a notebook, a script), the whole toolbox is a few calls:

```python
import onnxprobe

model = onnxprobe.load()                                  # the bundled ImageNet network (or a path, bytes, ModelProto)
cat = model.samples[0]                                    # a path, a PIL image or an RGB array
model.predict(cat)                                        # top-5 classes
model.activations(cat, "features.2.conv.0.2/Clip")        # the layer's units as a grid
model.backprop(cat, "logits", 285, mode="guided", filter="norm")
model.attribute(cat, "integrated_gradients", steps=32)   # any of onnxprobe.METHODS
model.render(onnxprobe.channel("features.10.conv.0.2/Clip", 5) + 0.5 * onnxprobe.logit(285), steps=64)
model.render_classes([285, 450], steps=64)                # what classes look like to the network
model.top_k("photos/", "features.10.conv.0.2/Clip", top=9, out="topk/")
model.atlas("features.10.conv.0.2/Clip", "atlas/", units=range(16), data="photos/")
model.view()                                              # the live viewer window
onnxprobe.view("model.onnx", video="clip.mp4")            # the same window from a model file
```

Every result shows itself in Jupyter and has `.numpy()` and `.save(path)`. Errors are
`ProbeError`s with one line; a bad value is a `ParameterError` that names the parameter.

>>> import onnxprobe
>>> model = onnxprobe.load("models/digits/digits-cnn.onnx", device="cpu")
>>> model.predict("models/digits/samples/digit-7.png", top=1).labels
['7']
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first use: `import onnxprobe` and
# `onnxprobe --help` load none of them)
_EXPORTS = {
    "load": "onnxprobe.api.model", "Model": "onnxprobe.api.model", "view": "onnxprobe.api.model",
    "ObjectiveSpec": "onnxprobe.api.objectives", "channel": "onnxprobe.api.objectives",
    "neuron": "onnxprobe.api.objectives", "logit": "onnxprobe.api.objectives",
    "direction": "onnxprobe.api.objectives", "diversity": "onnxprobe.api.objectives",
    "stack": "onnxprobe.api.objectives",
    "Activations": "onnxprobe.api.results", "Atlas": "onnxprobe.api.results", "Layers": "onnxprobe.api.results",
    "Map": "onnxprobe.api.results", "Pictures": "onnxprobe.api.results", "Predictions": "onnxprobe.api.results",
    "TopK": "onnxprobe.api.results",
    "METHODS": "onnxprobe.attribution", "PRESETS": "onnxprobe.optimize.presets",
    "ProbeError": "onnxprobe.errors", "ParameterError": "onnxprobe.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and editors see; at run time `__getattr__` imports on demand
    from onnxprobe.api.model import Model, load, view
    from onnxprobe.api.objectives import ObjectiveSpec, channel, direction, diversity, logit, neuron, stack
    from onnxprobe.api.results import Activations, Atlas, Layers, Map, Pictures, Predictions, TopK
    from onnxprobe.attribution import METHODS
    from onnxprobe.errors import ParameterError, ProbeError
    from onnxprobe.optimize.presets import PRESETS


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'onnxprobe' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup finds it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
