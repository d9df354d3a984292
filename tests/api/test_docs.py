"""The API reference is generated from the docstrings (pdoc, tools/api_docs.py) and renders
every public name with its text and examples."""

from __future__ import annotations

import warnings

import pytest

import onnxprobe

pytest.importorskip("pdoc")


def test_the_reference_builds_and_documents_every_public_name(tmp_path):
    from tools.api_docs import build

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an annotation or docstring pdoc cannot read fails here
        out = build(tmp_path / "api")
    page = (out / "onnxprobe.html").read_text(encoding="utf-8")
    for name in onnxprobe.__all__:
        if name != "__version__":
            assert f'id="{name}"' in page, f"{name} is missing from the reference"
    model = (out / "onnxprobe" / "api" / "model.html").read_text(encoding="utf-8")
    for method in ("predict", "activations", "backprop", "attribute", "render", "render_units", "render_classes",
                   "top_k", "atlas", "view"):
        assert f'id="Model.{method}"' in model
    assert model.count("&gt;&gt;&gt; ") >= 20  # the doctested examples are part of the reference
    assert "sidecar" in page and "integrated_gradients" in page  # the docstrings' text, not only signatures
