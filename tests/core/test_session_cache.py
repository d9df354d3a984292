"""ProbeModel's session cache is sized by memory, not by a count of sessions: a model whose
sessions are small keeps many (the viewer walking MobileNetV2's layers keeps its gradient graphs),
one whose sessions are large keeps few; the least recently used go first."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import SessionCache, session_bytes


class Fake:
    def __init__(self, nbytes: int):
        self.nbytes = nbytes


def _fill(cache: SessionCache, sizes: dict[str, int]) -> None:
    for key, size in sizes.items():
        cache.get(key, lambda size=size: Fake(size))


def test_the_cache_evicts_by_bytes_not_by_count():
    small = SessionCache(budget=1000)
    _fill(small, {f"s{i}": 10 for i in range(50)})  # 500 bytes in 50 sessions: all stay
    assert len(small) == 50 and small.nbytes == 500
    big = SessionCache(budget=1000)
    _fill(big, {"a": 400, "b": 400, "c": 400})  # 1200 bytes: the oldest goes
    assert len(big) == 2 and big.nbytes == 800
    built = []
    big.get("a", lambda: built.append("a") or Fake(400))
    assert built == ["a"]  # it was gone: rebuilt


def test_the_least_recently_used_go_first():
    cache = SessionCache(budget=1000)
    _fill(cache, {"a": 300, "b": 300, "c": 300})
    cache.get("a", lambda: Fake(999))  # a hit: "a" is now the most recent, not rebuilt
    _fill(cache, {"d": 300})  # 1200: "b", the least recently used, goes
    kept = []
    for key in "acd":
        cache.get(key, lambda key=key: kept.append(key) or Fake(1))
    assert kept == [] and cache.nbytes == 900


def test_the_most_recent_sessions_stay_even_over_budget():
    cache = SessionCache(budget=100, keep=2)
    _fill(cache, {"forward": 500, "back": 500, "other": 500})
    assert len(cache) == 2 and cache.nbytes == 1000  # the two latest, over budget: never rebuilt for each other


def _model_with_weights(values: int) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones(values, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [values])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [values])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_the_estimate_grows_with_weights_and_values():
    small, large = session_bytes(_model_with_weights(1000)), session_bytes(_model_with_weights(1_000_000))
    assert 2 * 4000 <= small < 2 * 4000 + 4000  # the weights twice, a quarter of the output's 4000 bytes
    assert large == 2 * 4_000_000 + 1_000_000


def test_a_model_keeps_more_small_sessions_than_the_old_count(tiny_model_path):
    """A tiny CNN's forward graphs of 12 layer sets all stay under the default budget (the old cache
    kept 8); under a budget of about two of them, only the latest two or three."""
    model = ProbeModel.load(tiny_model_path, device="cpu", threads=1)
    names = [layer.name for layer in model.layers]
    sets = [c for r in (1, 2, 3) for c in itertools.combinations(names, r)][:12]
    assert len(sets) == 12
    x = np.zeros(model.input_shape, np.float32)
    for chosen in sets:
        model.activations(x, chosen)
    assert len(model._sessions) == 12  # noqa: SLF001
    one = max(s.nbytes for s in model._sessions._items.values())  # noqa: SLF001
    model._sessions = SessionCache(budget=2 * one + 1)  # noqa: SLF001
    for chosen in sets:
        model.activations(x, chosen)
    assert 2 <= len(model._sessions) <= 3 and model._sessions.nbytes <= 3 * one  # noqa: SLF001
