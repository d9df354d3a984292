"""The batch axis, whatever the file says: fixed batches made dynamic (and proved), symbolic batches
under any name, and graphs that stay fixed run a fixed number of rows at a time with the results
of one batched run. The references are the unmodified graphs run by ONNX Runtime row by row, or
hand-built batch-dynamic twins of the same arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprobe.errors import UsageError
from onnxprobe.model import ProbeModel
from onnxprobe.runtime.session import Session
from tests.conftest import ROOT, make_conv_model

U = 2.0 ** -24  # float32 unit roundoff


def _tol(reference: np.ndarray, k: int) -> float:
    """Two float32 computations of the same dot products of summed length k differ by at most
    2*k*u times the largest magnitude involved (the standard rounding bound, once per run)."""
    return 2.0 * k * U * max(float(np.abs(reference).max()), 1e-30)


def _init(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype), name)


def exporter_style(path, batch: int = 1, class_token: bool = True, name_batch: str | None = None):
    """What exporters write for a fixed batch B: every batch-size constant hard-coded (Reshape
    [B, -1], ConstantOfShape / Expand shapes, Tile repeats, a one-row constant concatenated onto the
    batch), and value_info recording batch B for every tensor. `name_batch`: declare the input's
    batch under that name instead (the constants still say B)."""
    rng = np.random.default_rng(1)
    b = batch
    inits = [
        _init("w1", rng.standard_normal((4, 3, 3, 3)) * 0.4), _init("b1", rng.standard_normal(4) * 0.1),
        _init("cos_shape", [b, 4, 8, 8], np.int64), _init("tile_src", rng.standard_normal((1, 4, 1, 1))),
        _init("tile_rep", [b, 1, 8, 8], np.int64), _init("tok", rng.standard_normal((1, 4, 1, 8))),
        _init("tok_shape", [b, 4, 1, 8], np.int64), _init("cls", rng.standard_normal((1, 4, 1, 8))),
        _init("flat_shape", [b, -1], np.int64),
    ]
    rows = 9 + int(class_token)
    inits.append(_init("fc", rng.standard_normal((4 * rows * 8, 5)) * 0.05))
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("ConstantOfShape", ["cos_shape"], ["quarter"], name="quarter",
                         value=numpy_helper.from_array(np.array([0.25], np.float32))),
        helper.make_node("Add", ["relu", "quarter"], ["shifted"], name="shifted"),
        helper.make_node("Tile", ["tile_src", "tile_rep"], ["gain"], name="gain"),
        helper.make_node("Mul", ["shifted", "gain"], ["scaled"], name="scaled"),
        helper.make_node("Expand", ["tok", "tok_shape"], ["tokens"], name="tokens"),
        helper.make_node("Concat", ["scaled", "tokens"], ["with_tokens"], axis=2, name="with_tokens"),
    ]
    last = "with_tokens"
    if class_token:
        nodes.append(helper.make_node("Concat", ["cls", "with_tokens"], ["with_cls"], axis=2, name="with_cls"))
        last = "with_cls"
    nodes += [
        helper.make_node("Reshape", [last, "flat_shape"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], name="logits"),
    ]
    declared = name_batch or b
    graph = helper.make_graph(nodes, "exporter", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [declared, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [declared, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)  # value_info at batch B, as converters leave it
    if name_batch:  # the constants keep their B, but value_info says the name like the input
        for value in model.graph.value_info:
            dims = value.type.tensor_type.shape.dim
            if dims and dims[0].HasField("dim_value") and dims[0].dim_value == b:
                dims[0].dim_param = name_batch
    onnx.save(model, str(path))
    return model


def _original_rows(model: onnx.ModelProto, x: np.ndarray, names, batch: int) -> dict[str, np.ndarray]:
    """The unmodified file run by ONNX Runtime `batch` rows at a time (the last chunk padded)."""
    from onnxprobe.graph.expose import expose_tensors

    session = Session(expose_tensors(model, names, keep_outputs=False), device="cpu")
    parts = []
    for start in range(0, len(x), batch):
        idx = np.minimum(np.arange(start, start + batch), len(x) - 1)
        parts.append(session.run({"image": x[idx]}, names))
    return {n: np.concatenate([p[n] for p in parts])[:len(x)] for n in names}


@pytest.mark.parametrize("batch,class_token", [(1, True), (2, False)])
def test_fixed_batch_constants_are_made_dynamic_and_proved(tmp_path, batch, class_token):
    original = exporter_style(tmp_path / "m.onnx", batch, class_token)
    model = ProbeModel.load(tmp_path / "m.onnx", device="cpu")
    assert model.batch.kind == "made dynamic", model.batch.describe()
    rewritten = {"quarter", "gain", "tokens", "flat"} | ({"with_cls"} if class_token else set())
    assert set(model.batch.rewritten) == rewritten
    names = [layer.name for layer in model.layers]
    assert {"conv", "relu", "shifted", "scaled", "with_tokens", "flat", "logits"} <= set(names)
    assert all(layer.shape[0] is None for layer in model.layers)
    x = np.random.default_rng(2).standard_normal((5, 3, 8, 8)).astype(np.float32)
    acts = model.activations(x, ["scaled", "flat", "logits"])
    reference = _original_rows(original, x, ["scaled", "flat", "logits"], batch)
    for name in ("scaled", "flat", "logits"):
        assert acts[name].shape[0] == 5
        # K: the 27-long conv dot products, plus the Gemm's inner length for the logits
        k = 27 + (acts["flat"].shape[1] if name == "logits" else 0)
        np.testing.assert_allclose(acts[name], reference[name], rtol=0, atol=_tol(reference[name], k))
    # the lead of issue 11: a batch of 4 through the gradient graph (optimize, integrated gradients)
    # used to fail in ONNX Runtime's Gemm on the hard-coded [1, -1]; each row's gradient equals its own run
    seed = np.zeros((4, 5), np.float32)
    seed[np.arange(4), np.arange(4)] = 1.0
    session = model.gradient_session(["logits"])
    grads = session.run(x[:4], {"logits": seed})["grad"]
    for i in range(4):
        one = session.run(x[i:i + 1], {"logits": seed[i:i + 1]})["grad"]
        np.testing.assert_allclose(grads[i:i + 1], one, rtol=0, atol=_tol(one, 27 + acts["flat"].shape[1]))


@pytest.mark.parametrize("half_inside", [False, True])
def test_a_half_precision_input_is_made_dynamic(tmp_path, half_inside):
    """A fixed-batch file whose input is float16 (cast to float32 first, or computed in float16
    throughout) is made dynamic: the proof feeds its rows in the input's type, and measures float16
    tensors against float16 rounding. Before, every such file stayed fixed, 'the graph does not run at
    batch 2' (ONNX Runtime refused the proof's float32 rows)."""
    from onnxprobe.graph.batch import make_batch_dynamic, prove_batch_dynamic
    from onnxprobe.graph.loading import fix_input_shape, load_model

    half = TensorProto.FLOAT16
    weights = np.random.default_rng(0).standard_normal((4, 3, 3, 3)) * 0.3
    nodes = ([] if half_inside else [helper.make_node("Cast", ["image"], ["image32"], to=TensorProto.FLOAT, name="to32")]) + [
        helper.make_node("Conv", ["image" if half_inside else "image32", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Reshape", ["relu", "flat_shape"], ["flat"], name="flat")]
    inits = [_init("w", weights, np.float16 if half_inside else np.float32), _init("flat_shape", [1, -1], np.int64)]
    graph = helper.make_graph(nodes, "half", [helper.make_tensor_value_info("image", half, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("flat", half if half_inside else TensorProto.FLOAT, [1, 256])],
                              inits)
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    original.ir_version = 8
    onnx.save(original, str(tmp_path / "half.onnx"))
    # the run proof itself (the load may prove such a graph without a run)
    proto, fixed = fix_input_shape(load_model(tmp_path / "half.onnx"), None)
    rewritten, _ = make_batch_dynamic(proto, "image", fixed, 1)
    proved, why, _ = prove_batch_dynamic(proto, rewritten, "image", fixed, 1)
    assert proved, why
    model = ProbeModel.load(tmp_path / "half.onnx", device="cpu")
    assert model.batch.kind == "made dynamic", model.batch.describe()
    assert model.batch.rewritten == ("flat",)
    # (ProbeModel feeds float32 images: running a float16-input model is another matter)


def test_symbolic_batch_under_any_name_lists_every_layer(tmp_path):
    exporter_style(tmp_path / "named.onnx", 1, class_token=False, name_batch="batch_size")
    model = ProbeModel.load(tmp_path / "named.onnx", device="cpu")
    assert model.batch.kind == "dynamic" and model.batch.declared == "batch_size"
    assert "conv" in [layer.name for layer in model.layers]
    assert model.layer("conv").shape == (None, 4, 8, 8)


def test_value_info_with_minus_one_batch_does_not_hide_layers(tmp_path):
    """paddle2onnx writes -1 as a dim value for the batch of every tensor."""
    path = tmp_path / "paddle.onnx"
    proto = make_conv_model()
    proto.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    proto = onnx.shape_inference.infer_shapes(proto)
    for value in list(proto.graph.value_info) + list(proto.graph.output):
        value.type.tensor_type.shape.dim[0].Clear()
        value.type.tensor_type.shape.dim[0].dim_value = -1
    onnx.save(proto, str(path))
    model = ProbeModel.load(path, device="cpu")
    assert [layer.name for layer in model.layers] == ["conv1", "relu1", "pool1", "conv2", "relu2", "flat", "logits", "probs"]
    assert model.batch.kind == "dynamic"


def merged_batch(path, batch: int, follow: bool = False):
    """A graph that folds the batch into another axis (Reshape to [B*3, 6, 6] and back), through
    an op the batch walk (batch_placements) does not follow (Pad, here by zero): no constant
    rewrite makes it follow the batch, so it stays fixed. Its arithmetic is Neg between Relu and a
    3x3 convolution. `follow=True` leaves the Pad out: at batch 1 the walk follows the batch into
    the merged axis (3 becomes 3N)."""
    rng = np.random.default_rng(3)
    inits = [_init("w", rng.standard_normal((5, 3, 3, 3)) * 0.4), _init("merged", [batch * 3, 6, 6], np.int64),
             _init("back", [batch, 3, 6, 6], np.int64), _init("no_pads", [0] * 6, np.int64)]
    nodes = [
        helper.make_node("Relu", ["image"], ["relu"], name="relu"),
        helper.make_node("Reshape", ["relu", "merged"], ["m0" if not follow else "m"], name="merge"),
        *([] if follow else [helper.make_node("Pad", ["m0", "no_pads"], ["m"], name="as_is")]),
        helper.make_node("Neg", ["m"], ["neg"], name="neg"),
        helper.make_node("Reshape", ["neg", "back"], ["unmerged"], name="unmerge"),
        helper.make_node("Conv", ["unmerged", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
    ]
    graph = helper.make_graph(nodes, "merged", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 6, 6])],
                              [helper.make_tensor_value_info("conv", TensorProto.FLOAT, [batch, 5, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    twin_nodes = [nodes[0], helper.make_node("Neg", ["relu"], ["unmerged"], name="neg"), nodes[-1]]
    twin = helper.make_graph(twin_nodes, "twin", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 6, 6])],
                             [helper.make_tensor_value_info("conv", TensorProto.FLOAT, ["N", 5, 6, 6])], [inits[0]])
    twin_model = helper.make_model(twin, opset_imports=[helper.make_opsetid("", 18)])
    twin_model.ir_version = 8
    onnx.save(twin_model, str(path.with_name("twin.onnx")))


@pytest.mark.parametrize("batch,follow", [(1, False), (2, False), (1, True)])
def test_graph_that_merges_the_batch_into_an_axis(tmp_path, batch, follow):
    merged_batch(tmp_path / "merged.onnx", batch, follow)
    model = ProbeModel.load(tmp_path / "merged.onnx", device="cpu")
    twin = ProbeModel.load(tmp_path / "twin.onnx", device="cpu")
    if follow:
        assert model.batch.kind == "made dynamic" and set(model.batch.rewritten) == {"merge", "unmerge"}
    else:
        assert model.batch.kind == "fixed" and model.batch.rows == batch
        assert "Reshape node 'unmerge' fails" in model.batch.why or "merge" in model.batch.why
    assert [layer.name for layer in model.layers] == ["relu", "unmerged", "conv"]
    assert model.layer("conv").shape == (None, 5, 6, 6)
    x = np.random.default_rng(4).standard_normal((3, 3, 6, 6)).astype(np.float32)
    acts, reference = model.activations(x, ["conv"])["conv"], twin.activations(x, ["conv"])["conv"]
    np.testing.assert_allclose(acts, reference, rtol=0, atol=_tol(reference, 27))
    seed = np.random.default_rng(5).standard_normal((3, 5, 6, 6)).astype(np.float32)
    grad = model.gradient_session(["conv"]).run(x, {"conv": seed})["grad"]
    want = twin.gradient_session(["conv"]).run(x, {"conv": seed})["grad"]
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, want, rtol=0, atol=_tol(want, 5 * 9))


def test_optimizer_batch_on_a_fixed_graph_equals_its_twin(tmp_path):
    """The optimizer's graph engine (its own step graph around the gradient graph) loops rows too:
    a batch of 3 on the fixed graph gives what its batch-dynamic twin gives."""
    from onnxprobe.objectives import channel
    from onnxprobe.optimize.optimizer import Optimizer
    from onnxprobe.optimize.presets import get_preset

    merged_batch(tmp_path / "merged.onnx", 1)
    model = ProbeModel.load(tmp_path / "merged.onnx", device="cpu")
    twin = ProbeModel.load(tmp_path / "twin.onnx", device="cpu")
    # each model's own channel objective: the mean over every non-channel position, the same seeds
    # whether or not the layer's spatial axes are known (the folded Reshape hides the fixed graph's)
    objectives = [channel(m, "conv", 2) for m in (model, twin)]
    assert np.array_equal(*(o.seeds(None, 3)["conv"] for o in objectives))
    runs = [Optimizer(m, o, get_preset("set3", steps=4), seed=7, batch=3, engine="graph").run() for m, o in zip((model, twin), objectives)]
    for i in range(3):
        a, b = runs[0].best_image(i).astype(int), runs[1].best_image(i).astype(int)
        assert np.abs(a - b).max() <= 1  # uint8 display images: float32 rounding may flip one level
    # objective values: means of 6x6 positions of 27-long dot products, four steps apart
    np.testing.assert_allclose(runs[0].best_activation, runs[1].best_activation, rtol=0,
                               atol=_tol(runs[1].best_activation, 27 + 36))


def test_dynamic_height_width_use_the_sidecar_input_size(tmp_path):
    path = tmp_path / "dyn.onnx"
    proto = make_conv_model(size=(16, 16))
    for axis in (2, 3):
        proto.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = "HW"[axis - 2]
    onnx.save(proto, str(path))
    with pytest.raises(UsageError, match="input_size"):
        ProbeModel.load(path, device="cpu")
    (tmp_path / "dyn.onnxprobe.json").write_text(json.dumps({"input_size": [16, 16]}))
    model = ProbeModel.load(path, device="cpu")
    assert model.input_shape == (1, 3, 16, 16)
    assert model.layer("pool1").shape == (None, 4, 8, 8)


def _cli(*args):
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "onnxprobe", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_layers_says_how_the_batch_is_handled(tmp_path):
    exporter_style(tmp_path / "fixed.onnx", 1)
    merged_batch(tmp_path / "merged.onnx", 1)
    made = _cli("layers", tmp_path / "fixed.onnx")
    assert made.returncode == 0 and "batch made dynamic (the file fixes it at 1; 5 batch-size constant(s) rewritten" in made.stdout
    fixed = _cli("layers", tmp_path / "merged.onnx")
    assert fixed.returncode == 0 and "batch fixed at 1: rows run one at a time" in fixed.stdout, fixed.stdout
    assert fixed.stderr == ""  # the failed batch-2 trial is not an error to show


def test_zero_layers_says_why(tmp_path):
    """A graph whose tensors all lose the batch (a ReduceMean over it) lists no layer, and says why."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["avg"], keepdims=0, name="avg"),
             helper.make_node("Relu", ["avg"], ["relu"], name="relu")]
    graph = helper.make_graph(nodes, "nobatch", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("relu", TensorProto.FLOAT, [])],
                              [_init("axes0", [0], np.int64)])
    graph.node[0].input.append("axes0")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nobatch.onnx"))
    out = _cli("layers", tmp_path / "nobatch.onnx")
    assert out.returncode == 0
    assert "0 layers" in out.stdout and "no probeable layer: none of the graph's" in out.stdout, out.stdout


def test_commands_on_a_fixed_graph_give_its_twins_results(tmp_path, capsys):
    """maxact (batches of images) and integrated gradients (batches of interpolation steps) on a
    graph that runs one row at a time write what they write for its batch-dynamic twin."""
    import cv2

    from onnxprobe.cli import main

    merged_batch(tmp_path / "merged.onnx", 1)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(6)
    for i in range(5):
        cv2.imwrite(str(photos / f"p{i}.png"), (rng.random((12, 12, 3)) * 255).astype(np.uint8))
    results = {}
    for name in ("merged", "twin"):
        out = tmp_path / f"out-{name}"
        assert main(["maxact", str(tmp_path / f"{name}.onnx"), str(photos), "--layer", "conv", "--top", "2",
                     "--batch-size", "3", "--out", str(out / "maxact")]) == 0
        assert main(["attribute", str(tmp_path / f"{name}.onnx"), str(photos / "p0.png"), "--method",
                     "integrated_gradients", "--layer", "relu", "--unit", "1", "--position", "mean",
                     "--out", str(out / "ig.png"),
                     "--npy", str(out / "ig.npy")]) == 0
        summary = json.loads((out / "maxact" / "maxact.json").read_text())
        records = json.loads((out / "maxact" / summary["layers"]["conv"]).read_text())
        # (the fold hides the fixed graph's positions of "conv" from the receptive-field pass: the
        # hits' locations differ in form, their images and scores must not)
        results[name] = ([[h["image"] for h in r["hits"]] for r in records["unit_records"]],
                         np.array([[h["score"] for h in r["hits"]] for r in records["unit_records"]]),
                         np.load(out / "ig.npy"))
    capsys.readouterr()
    (hits, scores, ig), (twin_hits, twin_scores, twin_ig) = results["merged"], results["twin"]
    assert hits == twin_hits
    np.testing.assert_allclose(scores, twin_scores, rtol=0, atol=_tol(twin_scores, 27))
    # integrated gradients of a ReLU channel's mean (--position mean; the folded Reshape hides the later layers'
    # positions from the receptive-field pass, so their objectives would differ): sums of 36 terms
    np.testing.assert_allclose(ig, twin_ig, rtol=0, atol=_tol(twin_ig, 36))


def test_viewer_on_a_fixed_graph_shows_its_twins_activations(tmp_path):
    import cv2

    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.sources import ImageFilesSource
    from tests.viewer.conftest import poll_until

    merged_batch(tmp_path / "merged.onnx", 1)
    cv2.imwrite(str(tmp_path / "still.png"), (np.random.default_rng(8).random((12, 12, 3)) * 255).astype(np.uint8))
    values = {}
    for name in ("merged", "twin"):
        model = ProbeModel.load(tmp_path / f"{name}.onnx", device="cpu")
        viewer = Viewer(model, ImageFilesSource.single(tmp_path / "still.png")).start()
        try:
            viewer.select_layer([entry.name for entry in viewer.state.layers].index("conv"))
            poll_until(viewer, lambda: viewer.last_forward is not None and viewer.last_forward.settings.layer == "conv")
            values[name] = viewer.last_forward.activation  # what the viewer computed for its grid
            assert viewer.state.panes.grid is not None and viewer.state.panes.grid.size
        finally:
            viewer.stop()
    np.testing.assert_allclose(values["merged"], values["twin"], rtol=0, atol=_tol(values["twin"], 27))


def legacy_shapes(path):
    """The legacy exporter's way with shapes, on a batch-1 file: a class token expanded to a shape
    built by Where / Equal / ConstantOfShape (`expand(n, -1, -1)`) and a view whose target is sliced
    out of a Shape with bounds computed by Mod: ONNX's data propagation follows neither, so shape
    inference leaves everything after them unknown."""
    rng = np.random.default_rng(6)
    i64 = lambda name, v: helper.make_node("Constant", [], [name], name=name,  # noqa: E731
                                          value=numpy_helper.from_array(np.asarray(v, np.int64)))
    inits = [_init("w", rng.standard_normal((4, 3, 2, 2)) * 0.5), _init("cls", rng.standard_normal((1, 1, 4)))]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], strides=[2, 2], name="conv"),
        i64("to_tokens", [1, 4, 16]),
        helper.make_node("Reshape", ["conv", "to_tokens"], ["flat"], name="flat"),
        helper.make_node("Transpose", ["flat"], ["tokens"], perm=[0, 2, 1], name="tokens"),
        i64("three", [3]), i64("minus_one", -1), i64("size", [1, -1, -1]),
        helper.make_node("ConstantOfShape", ["three"], ["ones"], name="ones",
                         value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Mul", ["ones", "minus_one"], ["minus_ones"], name="minus_ones"),
        helper.make_node("Equal", ["size", "minus_ones"], ["keep"], name="keep"),
        helper.make_node("Where", ["keep", "ones", "size"], ["cls_shape"], name="cls_shape"),
        helper.make_node("Expand", ["cls", "cls_shape"], ["cls_row"], name="cls_row"),
        helper.make_node("Concat", ["cls_row", "tokens"], ["seq"], axis=1, name="seq"),
        helper.make_node("Shape", ["seq"], ["seq_shape"], name="seq_shape"),
        i64("seven", [7]), i64("seven_again", [7]), i64("two", [2]), i64("heads", [2, 2]),
        helper.make_node("Mod", ["seven", "seven_again"], ["zero"], name="zero"),
        helper.make_node("Slice", ["seq_shape", "zero", "two"], ["lead"], name="lead"),
        helper.make_node("Concat", ["lead", "heads"], ["split_shape"], axis=0, name="split_shape"),
        helper.make_node("Reshape", ["seq", "split_shape"], ["split"], name="split"),
        helper.make_node("Softmax", ["split"], ["attn"], axis=-1, name="attn"),
        helper.make_node("ReduceMean", ["attn", "two"], ["pooled"], keepdims=0, name="pooled"),
    ]
    graph = helper.make_graph(nodes, "legacy", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 17, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


def test_shapes_the_legacy_exporter_computes_are_found_without_a_run(tmp_path, monkeypatch):
    """The file's shapes at its own batch come from inference helped by folding (graph/batch.py
    static_shapes): no session is started for them (the legacy ViT-B/16 export paid one session and
    one run of the whole model for them), and they are the shapes ONNX Runtime computes."""
    import onnxprobe.runtime.session as session_module
    from onnxprobe.graph.batch import static_shapes
    from onnxprobe.graph.expose import expose_tensors

    model = legacy_shapes(tmp_path / "legacy.onnx")
    assert onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info  # it infers, but:
    inferred = {v.name for v in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info
                if v.type.tensor_type.HasField("shape")
                and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)}
    assert not {"cls_row", "seq", "split", "attn"} & inferred, "the fixture no longer needs folding"
    names = [o for n in model.graph.node for o in n.output]
    reference = Session(expose_tensors(model, names, keep_outputs=False), device="cpu").run(
        {"image": np.zeros((1, 3, 8, 8), np.float32)}, names)

    def no_session(*args, **kwargs):
        raise AssertionError("static_shapes started a session")

    monkeypatch.setattr(session_module, "create_session", no_session)
    shapes, elems = static_shapes(model, "image", (1, 3, 8, 8))
    for name in names:
        assert shapes[name] == np.shape(reference[name]), name
        assert elems[name] == helper.np_dtype_to_tensor_dtype(np.asarray(reference[name]).dtype), name
    monkeypatch.undo()
    loaded = ProbeModel.load(tmp_path / "legacy.onnx", device="cpu")
    assert loaded.batch.kind == "made dynamic", loaded.batch.describe()
    assert loaded.layer("attn").shape == (None, 17, 2, 2)


def rows_meet_model(path, how: str):
    """A batch-1 file whose every constant is batch-free, so the placement walk follows the batch
    to the output, but whose rows meet at batch 2: `size` scales by the input's element count (a
    value that grows with the batch), `reverse` reverses the batch axis with a Slice (a no-op at
    batch 1), `mean` subtracts the mean over every axis (ReduceMean with empty axes)."""
    rng = np.random.default_rng(7)
    inits = [_init("w", rng.standard_normal((4, 3, 3, 3)) * 0.4)]
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv")]
    if how == "size":
        nodes += [helper.make_node("Size", ["conv"], ["count"], name="count"),
                  helper.make_node("Cast", ["count"], ["scale"], to=TensorProto.FLOAT, name="scale"),
                  helper.make_node("Mul", ["conv", "scale"], ["mixed"], name="mixed")]
    elif how == "reverse":
        inits += [_init("start", [-1], np.int64), _init("end", [-2 ** 63], np.int64), _init("axis", [0], np.int64),
                  _init("step", [-1], np.int64)]
        nodes.append(helper.make_node("Slice", ["conv", "start", "end", "axis", "step"], ["mixed"], name="mixed"))
    else:
        inits.append(_init("every", np.zeros(0), np.int64))
        nodes += [helper.make_node("ReduceMean", ["conv", "every"], ["mean"], keepdims=1, name="mean"),
                  helper.make_node("Sub", ["conv", "mean"], ["mixed"], name="mixed")]
    nodes.append(helper.make_node("Relu", ["mixed"], ["out"], name="out"))
    graph = helper.make_graph(nodes, how, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


@pytest.mark.parametrize("how", ["size", "reverse", "mean"])
def test_rows_that_meet_are_never_proved_from_the_graph(tmp_path, how):
    """The placement walk follows the batch through these graphs to their output, yet their rows
    meet: the proof from the graph (rows_never_meet) must refuse them, so the run decides, and
    the run finds the rows meet: the batch stays fixed. A proof from the graph that accepted them
    would make them dynamic without a run."""
    from onnxprobe.graph import batch as batch_module
    from onnxprobe.graph.loading import fix_input_shape

    model, _ = fix_input_shape(rows_meet_model(tmp_path / f"{how}.onnx", how), None)
    shapes, _ = batch_module.static_shapes(model, "image", (1, 3, 6, 6))
    found = batch_module.batch_placements(model, "image", shapes, batch_module._constants(model), 1)
    assert found is not None and found[1]["out"] == (0, 1), "the walk no longer follows the batch here"
    assert batch_module.rows_never_meet(model, "image", found[1], shapes, batch_module._constants(model))
    loaded = ProbeModel.load(tmp_path / f"{how}.onnx", device="cpu")
    assert loaded.batch.kind == "fixed", loaded.batch.describe()


def test_rows_apart_are_proved_from_the_graph_without_a_run(tmp_path, monkeypatch):
    """Graphs whose every op keeps rows apart (the exporter's batch-size constants, a view that
    merges the batch into another axis and back) are made dynamic with no run of the proof, and
    their batches equal row-by-row runs of the file (the tests above compare their results)."""
    from onnxprobe.graph import batch as batch_module

    exporter_style(tmp_path / "exporter.onnx", 1, class_token=True)
    merged_batch(tmp_path / "merged.onnx", 1, follow=True)

    def no_run(*args, **kwargs):
        raise AssertionError("the proof ran the model")

    monkeypatch.setattr(batch_module, "prove_batch_dynamic", no_run)
    for name in ("exporter.onnx", "merged.onnx"):
        model = ProbeModel.load(tmp_path / name, device="cpu")
        assert model.batch.kind == "made dynamic" and model.batch.proof == "graph", model.batch.describe()
        assert "proved from the graph" in model.batch.describe()


def pooled_head(path, mix: bool = False):
    """A batch-1 file that the proof from the graph refuses but a run proves: convolution, ReLU and
    a global mean pool (row by row), then the default exporter's `as_strided` (the pooled tensor
    flattened whole and read back by a Gather with indices shaped (1, ...): the walk stops there)
    and a Gemm head. `mix`: the head also subtracts the mean over the batch axis (rows meet after
    the pool)."""
    rng = np.random.default_rng(8)
    inits = [_init("w", rng.standard_normal((4, 3, 3, 3)) * 0.4), _init("spatial", [2, 3], np.int64),
             _init("flat", [-1], np.int64), _init("strided", np.arange(4).reshape(1, 4, 1, 1), np.int64),
             _init("fc", rng.standard_normal((4, 5)) * 0.5), _init("rows", [0], np.int64)]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("ReduceMean", ["relu", "spatial"], ["pool"], keepdims=1, name="pool"),
        helper.make_node("Reshape", ["pool", "flat"], ["flat_pool"], name="flat_pool"),
        helper.make_node("Gather", ["flat_pool", "strided"], ["strided_pool"], axis=0, name="strided_pool"),
        helper.make_node("Flatten", ["strided_pool"], ["features"], name="features"),
    ]
    if mix:
        nodes += [helper.make_node("ReduceMean", ["features", "rows"], ["batch_mean"], keepdims=1, name="batch_mean"),
                  helper.make_node("Sub", ["features", "batch_mean"], ["centred"], name="centred"),
                  helper.make_node("Gemm", ["centred", "fc"], ["logits"], name="logits")]
    else:
        nodes.append(helper.make_node("Gemm", ["features", "fc"], ["logits"], name="logits"))
    graph = helper.make_graph(nodes, "pooled", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


@pytest.mark.parametrize("mix", [False, True], ids=["rows apart", "rows meet"])
def test_the_run_proof_runs_only_what_it_compares(tmp_path, monkeypatch, mix):
    """Where the proof must run, it runs only the nodes its compared tensors need after the last
    tensors right by rows_meet's induction, fed rows of their own (graph/batch.py _region): here
    the head after the pool, not the convolution. It proves what the whole graph's runs prove
    (the batches equal the file run row by row) and finds rows that meet after the cut."""
    from onnxprobe.graph import batch as batch_module

    original = pooled_head(tmp_path / "pooled.onnx", mix)
    fed, real = [], batch_module._compare

    def spy(model, feeds, names, depth, *unit):
        out = real(model, feeds, names, depth, *unit)
        fed.append((sorted(feeds), out[0]))
        return out

    monkeypatch.setattr(batch_module, "_compare", spy)
    model = ProbeModel.load(tmp_path / "pooled.onnx", device="cpu")
    # the region: fed at the pool (and after the tensors it compares), never the image
    assert "pool" in fed[0][0] and "image" not in fed[0][0] and fed[0][1] == (not mix), fed
    if mix:  # the region finds the rows meet (the batch's mean does not follow the batch: whatever
        # the values, so the whole graph need not run to see it)
        assert model.batch.kind == "fixed" and "batch_mean" in model.batch.why, (model.batch.describe(), fed)
        return
    assert len(fed) == 1 and model.batch.kind == "made dynamic" and model.batch.proof == "run", model.batch.describe()
    x = np.random.default_rng(9).standard_normal((3, 3, 8, 8)).astype(np.float32)
    acts = model.activations(x, ["features", "logits"])
    reference = _original_rows(original, x, ["features", "logits"], 1)
    for name in ("features", "logits"):
        np.testing.assert_allclose(acts[name], reference[name], rtol=0, atol=_tol(reference[name], 27 + 64 + 4))


def test_folds_that_would_be_large_are_not_evaluated():
    """static_shapes folds small integer tensors; an op that makes a large tensor out of a small
    shape (ConstantOfShape, Expand, Tile, Range, Pad) is not evaluated past 4096 elements (a hostile
    file's ConstantOfShape of 10^10 elements would allocate them)."""
    from onnxprobe.graph.batch import _small_result

    consts = {"huge": np.array([100000, 100000]), "small": np.array([2, 3]), "row": np.ones((1, 3)),
              "start": np.array(0), "limit": np.array(10 ** 9), "step": np.array(1), "pads": np.array([0, 0, 9999, 0])}
    const = consts.get
    cases = [("ConstantOfShape", ["huge"], False), ("ConstantOfShape", ["small"], True),
             ("Expand", ["row", "huge"], False), ("Expand", ["row", "small"], True),
             ("Tile", ["row", "huge"], False), ("Tile", ["row", "small"], True),
             ("Range", ["start", "limit", "step"], False), ("Pad", ["row", "pads"], False),
             ("ConstantOfShape", ["unknown"], False)]
    for op, inputs, small in cases:
        assert _small_result(helper.make_node(op, inputs, ["out"]), const, 4096) is small, (op, inputs)
