"""The newcomer's path through the CLI: `onnxprobe` alone prints the usage; every command's --help
has a description and examples whose files and layer names exist; `view --help` lists the keys."""

from __future__ import annotations

import re
import shlex

import pytest

from onnxprobe.cli import COMMANDS, main
from onnxprobe.viewer.keys import BINDINGS
from tests.conftest import ROOT


def _help(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_no_arguments_prints_the_usage_and_every_command(capsys):
    assert main([]) == 2  # argparse's convention for a missing argument: usage on stderr, status 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: onnxprobe")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\b", captured.err, re.M), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_description_and_examples(capsys, command):
    text = _help(capsys, command)
    paragraphs = text.split("\n\n")
    # argparse prints: usage, the description, the argument groups, the epilog
    description = paragraphs[1].strip()
    assert description and not description.startswith(("positional arguments", "options")), text
    examples = text.split("\nexamples:\n", 1)
    assert len(examples) == 2, f"{command} --help has no examples"
    assert re.search(rf"^\s+onnxprobe {command}\b", examples[1], re.M), examples[1]


def _example_commands(text: str) -> list[list[str]]:
    body = text.split("\nexamples:\n", 1)[1].replace("\\\n", " ")
    return [shlex.split(line.split("#", 1)[0]) for line in body.splitlines() if line.strip().startswith("onnxprobe ")]


@pytest.fixture(scope="module")
def bundled_layers():
    from onnxprobe.model import ProbeModel

    return {path: {layer.name for layer in ProbeModel.load(ROOT / path, device="cpu").layers}
            for path in ("models/imagenet/mobilenet_v2.onnx", "models/digits/digits-cnn.onnx")}


@pytest.mark.parametrize("command", COMMANDS)
def test_examples_name_bundled_files_and_real_layers(capsys, command, bundled_layers):
    for words in _example_commands(_help(capsys, command)):
        models = [w for w in words if w in bundled_layers]
        for word in words:
            if word.startswith("models/"):
                assert (ROOT / word).exists(), f"{command} example names a missing file: {word}"
        for flag, value in zip(words, words[1:]):
            if flag == "--layer" and models:
                assert value in bundled_layers[models[0]], f"{command} example names no layer '{value}'"


def test_view_help_lists_every_key(capsys):
    from onnxprobe.cli.flags import VIEWER_WORDS

    text = _help(capsys, "view")
    for keys, _, what in BINDINGS:
        for word, said in VIEWER_WORDS.items():  # the viewer's inputs, as the view command names them
            what = what.replace("{" + word + "}", said)
        if what:
            shown = {"Escape": "esc"}.get(keys[0], keys[0])  # the only key help spells differently
            assert re.search(rf"^\s+{re.escape(shown)}\b.*{re.escape(what)}$", text, re.M), (keys, what)


def _options(command: str):
    """The command's parser and its options (not -h)."""
    import argparse

    from onnxprobe.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser = commands.choices[command]
    return parser, [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_says_what_it_does_and_states_its_default(command):
    """Every option has help, and one that has a default (not a switch, not required) states it in
    that help (best as argparse's %(default)s, which cannot drift from the code)."""
    parser, options = _options(command)
    formatter = parser._get_formatter()
    for action in options:
        flag = action.option_strings[-1]
        text = formatter._expand_help(action) if action.help else ""
        assert text.strip(), f"{command} {flag} has no help"
        if action.nargs == 0 or action.required or action.default in (None, "", False):
            continue
        assert "default" in text, f"{command} {flag}: the help does not state its default ({action.default!r}): {text}"


@pytest.mark.parametrize("command", ["optimize", "atlas"])
def test_a_command_without_an_image_does_not_explain_max(command):
    """optimize and atlas synthesize their images: their --position refuses max, so it is not offered."""
    _, options = _options(command)
    (position,) = [a for a in options if "--position" in a.option_strings]
    assert "max" not in position.help and "max" not in position.metavar, position.help
