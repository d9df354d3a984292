"""maxact under a memory budget of 1-2 rows per run: the same top-k (images, scores, locations) and
statistics as in one run per batch (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprobe.maxact import run_maxact
from onnxprobe.model import ProbeModel
from onnxprobe import model as model_mod

LAYERS = ["relu1", "conv2", "logits"]


@pytest.mark.parametrize("rows", [1, 2])
def test_topk_under_a_tiny_budget_is_exactly_the_same(gray_model_path, digits_dir, tmp_path, monkeypatch, rows):
    big = ProbeModel.load(gray_model_path, device="cpu", memory_budget="8G")
    whole = run_maxact(big, digits_dir, LAYERS, top=5, out_dir=tmp_path / "big", crops=False, deconv=False,
                       batch_size=16, shard_size=40)
    seen = []
    forward = model_mod.ProbeModel.activations
    monkeypatch.setattr(model_mod.ProbeModel, "activations",
                        lambda self, x, *a, **k: seen.append(len(x)) or forward(self, x, *a, **k))
    tiny = ProbeModel.load(gray_model_path, device="cpu", memory_budget=rows * big.row_bytes("forward"))
    chunked = run_maxact(tiny, digits_dir, LAYERS, top=5, out_dir=tmp_path / "tiny", crops=False, deconv=False,
                         batch_size=16, shard_size=40)
    assert max(seen) == rows
    for layer in LAYERS:
        a, b = whole.units(layer), chunked.units(layer)
        assert [[(h["image"], h["score"], h["location"]) for h in u.hits] for u in a] == \
               [[(h["image"], h["score"], h["location"]) for h in u.hits] for u in b]
        # the statistics are float64 sums of the same float32 values in other groupings
        eps = float(np.finfo(np.float64).eps) * 64
        for ua, ub in zip(a, b):
            assert ub.max == ua.max and ub.mean == pytest.approx(ua.mean, rel=eps, abs=eps)
