"""The two notebooks under docs/notebooks run from top to bottom on the CPU, and their cells
produce what their text says (types, shapes, labels), not only no error. The committed files
hold their outputs (GitHub renders them): every cell that shows something when run shows it
in the file too."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
pytestmark = pytest.mark.slow


def _run(name: str):
    from tools.run_notebooks import execute

    notebook, _ = execute(NOTEBOOKS / name, timeout=600)
    return notebook


def _cells(notebook) -> dict[str, dict]:
    """tag -> {mime type or 'stdout'/'stderr': content} of each tagged code cell."""
    found = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs: dict = {}
        for output in cell.outputs:
            if output.output_type == "stream":
                outputs[output.name] = outputs.get(output.name, "") + output.text
            elif output.output_type == "error":
                raise AssertionError(f"{output.ename}: {output.evalue}")
            else:
                outputs.update(output.get("data", {}))
        for tag in cell.metadata.get("tags", []):
            found[tag] = outputs
    return found


def _png_width(outputs: dict) -> int:
    data = base64.b64decode(outputs["image/png"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big")


def _committed_matches(name: str, executed) -> None:
    import nbformat

    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    kinds = lambda cell: sorted({k for o in cell.outputs for k in o.get("data", {})})  # noqa: E731
    pairs = [(a, b) for a, b in zip(committed.cells, executed.cells) if a.cell_type == "code"]
    assert len(committed.cells) == len(executed.cells)
    for old, new in pairs:
        assert old.source == new.source
        assert kinds(old) == kinds(new), f"the committed outputs of {old.source[:40]!r} are stale: run tools/run_notebooks.py"


def test_the_tour_of_the_bundled_network():
    notebook = _run("tour.ipynb")
    cells = _cells(notebook)
    assert cells["load"]["text/plain"].startswith("Model(mobilenet_v2.onnx, input 3x224x224")
    assert cells["layers"]["text/html"].count("<tr>") == 11 and "features.0.0" in cells["layers"]["text/html"]
    # the cat photo: its top-1 class, from a path and from a PIL image
    assert cells["predict"]["text/plain"].startswith("Predictions(chelsea.jpg: Egyptian cat")
    assert "image/png" in cells["predict"]
    assert cells["predict_pil"]["text/plain"].startswith("Predictions(image 0: Egyptian cat")
    assert "coffee.jpg: espresso" in cells["predict_pil"]["text/plain"]
    assert cells["activations"]["text/plain"] == "Activations(features.0.2/Clip: (1, 32, 112, 112))"
    assert _png_width(cells["activations"]) > 400
    assert cells["activations_shape"]["text/plain"] == "(1, 32, 112, 112)"
    for tag, shape in (("backprop", "(3, 224, 224)"), ("gradcam", "(224, 224)"), ("ig", "(3, 224, 224)")):
        assert cells[tag]["text/plain"].startswith("Map(") and f"values {shape}" in cells[tag]["text/plain"]
        assert _png_width(cells[tag]) == 2 * 224 + 8  # the input and the map side by side
    assert len(ast.literal_eval(cells["methods"]["text/plain"].removeprefix("dict_keys(").removesuffix(")"))) == 9
    assert cells["classes"]["text/plain"] == "Pictures(2: 285 Egyptian cat, 417 balloon)"
    assert _png_width(cells["classes"]) == 2 * 224 + 8
    # the progress bar: tqdm's notebook widget, or the text bar settled at its end
    assert ("96/96" in cells["classes"].get("stderr", "")
            or "application/vnd.jupyter.widget-view+json" in cells["classes"])
    assert cells["units"]["text/plain"].startswith("Pictures(4: features.10.conv.0.2/Clip:0")
    assert cells["composed"]["text/plain"].startswith("Pictures(1: channel features.10.conv.0.2/Clip:5 + 0.5")
    assert cells["topk"]["text/plain"].startswith("TopK(features.10.conv.0.2/Clip") and "image/png" in cells["topk"]
    assert cells["topk_scores"]["text/plain"].startswith("array([[") and cells["topk_scores"]["text/plain"].count("[") == 5
    assert cells["save"]["text/plain"] == "(['classes.png', 'ig.npy', 'acts.npz'], (2, 224, 224, 3))"
    _committed_matches("tour.ipynb", notebook)


def test_your_own_pytorch_model():
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    notebook = _run("your-own-pytorch-model.ipynb")
    cells = _cells(notebook)
    assert float(cells["train"]["text/plain"]) >= 0.95
    assert cells["export"]["text/plain"] == "['shapes.onnx', 'shapes.onnx.data']"  # the default exporter's files
    assert cells["load"]["text/plain"].startswith("Model(shapes.onnx, input 3x32x32")
    assert "conv2d" in cells["layers"]["text/html"]
    assert cells["predict"]["text/plain"] == ("Predictions(image 0: horizontal stripes 1.00; image 1: vertical stripes "
                                              "1.00; image 2: disc 1.00)")
    assert float(cells["agree"]["text/plain"]) < 1e-5  # onnxprobe's probabilities are PyTorch's
    assert cells["activations"]["text/plain"] == "Activations(relu: (1, 8, 32, 32))"
    assert cells["gradcam"]["text/plain"].startswith("Map(gradcam of") and "class 2 (disc)" in cells["gradcam"]["text/plain"]
    assert cells["backprop"]["text/plain"].startswith("Map(guided") and "relu_1:3" in cells["backprop"]["text/plain"]
    assert cells["classes"]["text/plain"] == "Pictures(3: 0 horizontal stripes, 1 vertical stripes, 2 disc)"
    # the network recognizes the classes it was made to picture
    assert ast.literal_eval(cells["classes_predicted"]["text/plain"]) == ["horizontal stripes", "vertical stripes", "disc"]
    _committed_matches("your-own-pytorch-model.ipynb", notebook)
