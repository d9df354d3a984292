"""Library errors speak the library's words (parameter names); the command line maps them to its
flags through one table (cli/flags.py) when it prints the line (issue 16)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import onnxprobe
from onnxprobe.cli import build_parser, main
from onnxprobe.cli.flags import FLAGS
from onnxprobe.errors import ParameterError

PACKAGE = Path(onnxprobe.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _library_files():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "cli" not in p.relative_to(PACKAGE).parts]


def _strings(node) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _calls(name: str):
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
                yield path, node


def test_no_library_error_names_a_flag():
    found = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {s!r}" for s in _strings(node.exc) if FLAG.search(s)]
    assert not found, "library errors naming command-line flags:\n" + "\n".join(found)


def test_every_parameter_a_library_error_names_has_a_flag_and_is_in_its_message():
    calls = list(_calls("ParameterError"))
    assert len(calls) >= 20  # the scan sees the library's errors (it would pass vacuously if it saw none)
    for path, call in calls:
        where = f"{path.relative_to(PACKAGE)}:{call.lineno}"
        params = [a.value for a in call.args[1:] if isinstance(a, ast.Constant)]
        assert params and len(params) == len(call.args) - 1, f"{where}: parameters must be literal names"
        template = "".join(_strings(call.args[0]))
        for param in params:
            assert param in FLAGS, f"{where}: parameter '{param}' has no flag in cli/flags.py FLAGS"
            # an f-string writes {{name}} as the literal {name}
            assert "{" + param + "}" in template, f"{where}: the message does not name '{param}'"


def test_the_viewer_names_no_flag():
    """The viewer's hints (status messages, pane placeholders, the key help) name its inputs in the
    words its front end gives (the view command: cli/flags.py VIEWER_WORDS), never a flag itself."""
    found = []
    for path in sorted((PACKAGE / "viewer").rglob("*.py")):
        found += [f"{path.relative_to(PACKAGE)}: {s!r}" for s in _strings(ast.parse(path.read_text(encoding="utf-8")))
                  if FLAG.search(s)]
    assert not found, "viewer texts naming command-line flags:\n" + "\n".join(found)


def test_the_view_command_words_the_viewer_hints_with_its_flags(digits_model_path):
    from types import SimpleNamespace

    from onnxprobe.model import ProbeModel
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.sources import CameraSource

    from onnxprobe.cli.flags import VIEWER_WORDS
    from onnxprobe.viewer.keys import KEYMAP, help_lines
    from onnxprobe.viewer.state import INPUT_WORDS, LayerEntry, ViewerState

    assert set(VIEWER_WORDS) == set(INPUT_WORDS)  # every input the viewer's hints name
    layers = [LayerEntry("conv1", 4, True, 1, (2, 3))]
    for words, atlas in ((None, "an atlas"), (VIEWER_WORDS, "--atlas DIR")):
        state = ViewerState(layers, words=words)
        KEYMAP["s"].action(SimpleNamespace(state=state))  # pattern mode without an atlas
        assert state.messages[-1][1] == f"pattern mode needs unit images: start with {atlas}"
        assert any(line.endswith(f"(needs {atlas})") for line in help_lines(words=words))
    assert VIEWER_WORDS["files"] == "--images, --image or --video"
    model = ProbeModel.load(digits_model_path, device="cpu")
    for words, files in ((None, "image files or a video"), (VIEWER_WORDS, "--images, --image or --video")):
        viewer = Viewer(model, CameraSource(0), words=words)  # never started: no thread, no camera opened
        viewer.toggle_source()  # on the camera with no files to go back to
        assert viewer.state.messages[-1][1] == f"no files to switch to: start with {files}"


def test_every_flag_in_the_table_exists():
    parser = build_parser()
    options = {opt for command in parser._subparsers._group_actions[0].choices.values()  # noqa: SLF001
               for action in command._actions for opt in action.option_strings}  # noqa: SLF001
    missing = sorted(set(FLAGS.values()) - options)
    assert not missing, f"FLAGS names flags no command has: {missing}"


def test_parameter_error_words():
    import pickle

    exc = ParameterError("{batch} must be at least 1, got 0; not {batches}", "batch")
    assert str(exc) == "batch must be at least 1, got 0; not {batches}"
    assert exc.in_words(FLAGS) == "--batch must be at least 1, got 0; not {batches}"
    again = pickle.loads(pickle.dumps(exc))  # from a Dask worker: still names its parameter
    assert type(again) is ParameterError and again.in_words(FLAGS) == exc.in_words(FLAGS)


def test_a_library_caller_is_told_the_parameter():
    from onnxprobe.optimize import RenderSettings

    for kwargs, words in (({"batch": 0}, "batch must be at least 1, got 0"),
                          ({"restarts": 0}, "restarts must be at least 1, got 0"),
                          ({"steps": 0}, "steps must be at least 1, got 0"),
                          ({"seed": -1}, "seed must be a whole number of at least 0, got -1"),
                          ({"seed": 0.5}, "seed must be a whole number of at least 0, got 0.5")):
        with pytest.raises(ParameterError) as info:
            RenderSettings.resolve(**kwargs)
        assert str(info.value) == words and "--" not in str(info.value)


def test_attribution_errors_name_their_parameters(digits_model_path):
    """attribute()'s own checks (objective, interpolation, integration rule and steps, baseline,
    occlusion window and stride, Grad-CAM's layer) speak of the library's parameters."""
    from onnxprobe.attribution import attribute, resize_map
    from onnxprobe.model import ProbeModel

    model = ProbeModel.load(digits_model_path, device="cpu")
    x = np.zeros(model.input_shape, np.float32)
    cases = [
        (lambda: attribute(model, x, "saliency", unit=0), ("layer", "unit"),
         "a unit objective needs both a layer and a unit"),
        (lambda: attribute(model, x, "saliency", target=1, layer="conv2", unit=0), ("target", "layer", "unit"),
         "give either a class target or a layer and unit, not both"),
        (lambda: attribute(model, x, "saliency", position=(0, 0)), ("position", "layer", "unit"),
         "a position needs a layer and unit"),
        (lambda: resize_map(np.zeros((2, 2)), (4, 4), "cubic"), ("interpolation",),
         "unknown interpolation 'cubic' (use bilinear or nearest)"),
        (lambda: attribute(model, x, "integrated_gradients", steps=1, rule="riemann_left"), ("steps", "rule"),
         "steps must be at least 2 for rule riemann_left, got 1"),
        (lambda: attribute(model, x, "integrated_gradients", rule="simpson"), ("rule",),
         "unknown integration rule 'simpson'"),
        (lambda: attribute(model, x, "integrated_gradients", baseline="grey"), ("baseline",), "unknown baseline 'grey'"),
        (lambda: attribute(model, x, "occlusion", window=(0, 4)), ("window",),
         "occlusion's window takes one or two positive integers, got (0, 4)"),
        (lambda: attribute(model, x, "occlusion", stride=(1, 2, 3)), ("stride",),
         "occlusion's stride takes one or two positive integers, got (1, 2, 3)"),
        (lambda: attribute(model, x, "occlusion", window=(99, 99)), ("window",),
         "occlusion window 99x99 is larger than the input 28x28"),
        (lambda: attribute(model, x, "gradcam", cam_layer="logits"), ("cam_layer",),
         "Grad-CAM needs a spatial layer as cam_layer"),
    ]
    for call, params, words in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert info.value.params == params and str(info.value).startswith(words), str(info.value)
        assert "--" not in str(info.value) and all(FLAGS[p] in info.value.in_words(FLAGS) for p in params)


@pytest.mark.parametrize("argv, line", [
    (["optimize", "{m}", "--layer", "conv2", "--unit", "0", "--batch", "0", "--out", "{o}"],
     "--batch must be at least 1, got 0"),
    (["optimize", "{m}", "--layer", "conv2", "--unit", "0", "--restarts", "0", "--out", "{o}"],
     "--restarts must be at least 1, got 0"),
    (["atlas", "{m}", "--layer", "conv2", "--batch", "0", "--out", "{o}"], "--batch must be at least 1, got 0"),
    (["atlas", "{m}", "--out", "{o}"], "choose at least one --layer, or --all"),
    (["maxact", "{m}", "{o}", "--layer", "conv2", "--every", "0", "--out", "{o}/x"], "--every must be at least 1"),
    (["attribute", "{m}", "{s}", "--method", "occlusion", "--window", "0", "--out", "{o}/m.png"],
     "occlusion's --window takes one or two positive integers, got (0, 0)"),
    (["attribute", "{m}", "{s}", "--method", "integrated_gradients", "--baseline", "grey", "--out", "{o}/m.png"],
     "unknown --baseline 'grey'"),
])
def test_the_command_line_is_told_the_flag(argv, line, digits_model_path, tmp_path, capsys):
    sample = digits_model_path.parent / "samples" / "digit-0.png"
    argv = [a.format(m=digits_model_path, o=tmp_path / "out", s=sample) for a in argv]
    (tmp_path / "out").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"onnxprobe: error: {line}") and err.count("\n") == 1, err
