"""Reading a model file light (graph.loading.read_light) and its external data (runtime.weights):
which file the weights come from."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session
from tests.conftest import make_conv_model


@pytest.mark.parametrize("decoy", [False, True])
def test_a_linked_model_file_reads_its_weights_from_the_file_linked_to(tmp_path, decoy):
    """A model file reached through a link of another name (the Hugging Face cache's
    snapshots/<rev>/model.onnx -> blobs/<hash>): its inline weights, left out of the proto by
    read_light, are read from the linked-to file, not from a file of the link's name beside it
    (missing: the load failed; a model of the same layout there: its weights were used silently)."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snapshot.mkdir()
    make_conv_model(blobs / "0123abcd", seed=0)
    if decoy:
        make_conv_model(blobs / "model.onnx", seed=1)
    (snapshot / "model.onnx").symlink_to(blobs / "0123abcd")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    reference = Session(make_conv_model(seed=0), device="cpu").run({"image": x})["probs"]
    model = ProbeModel.load(snapshot / "model.onnx", device="cpu")
    np.testing.assert_allclose(model.activations(x, ["probs"])["probs"], reference, rtol=1e-5, atol=1e-6)
