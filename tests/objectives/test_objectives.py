"""The objective algebra (onnxprobe.objectives), table-driven like test_rules.py: every
case is an objective built with the module's constructors and `+`, `-`, scalar `*`, `/` and
`stack`, beside an independent float64 numpy formula of the same scalar per batch row. One
parameterized test checks, on random activations, that

- `value` equals the formula, and
- `seeds` is the gradient of the formula's sum over the batch: for a random direction t per
  target, <seeds, t> equals the directional derivative of the formula (finite differences in
  float64: exact for the linear objectives, central differences for the others), and
- an objective with an in-graph form (`self_seed`) has seeds equal to mask * activation at the
  peak, which is what the self-seeded gradient graph forms.

The layers are LayerInfo values on a stand-in model (the constructors only ask `.layer(name)`,
`.facts` and `.class_output`); the real models' use is covered by the optimize, attribution,
maxact and viewer tests.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from onnx import helper

from onnxprobe import objectives as O
from onnxprobe.errors import UsageError
from onnxprobe.autodiff.tape import Tape
from onnxprobe.graph.facts import GraphFacts
from onnxprobe.graph.layers import LayerInfo
from onnxprobe.model import ProbeModel
from tests.conftest import make_conv_model

BATCH = 3
F32 = 2.0 ** -24  # float32 rounding of one seed element (the seeds are float32)
F64 = 2.0 ** -52


class StandIn:
    """Just what the constructors read from a ProbeModel."""

    def __init__(self, layers, nodes, class_output=None):
        self._layers = {layer.name: layer for layer in layers}
        self.facts = GraphFacts(helper.make_model(helper.make_graph(nodes, "g", [], [])), infer_shapes=False)
        self.class_output = class_output
        self.spec = SimpleNamespace(labels=None)

    def layer(self, name):
        if name not in self._layers:
            raise UsageError(f"no layer named '{name}'")
        return self._layers[name]


def _layer(name, shape, channel_axis, spatial_axes, differentiable=True):
    return LayerInfo(name, "Conv", (None, *shape), channel_axis, spatial_axes, None, differentiable)


MODEL = StandIn(
    [_layer("conv", (4, 5, 6), 1, (2, 3)), _layer("conv_pre", (4, 5, 6), 1, (2, 3)),
     _layer("nhwc", (5, 6, 4), 3, (1, 2)),
     _layer("vol", (3, 2, 4, 5), 1, (3, 4)),  # axis 2 is neither channel nor spatial: taken whole
     _layer("logits", (10,), 1, ()), _layer("prob", (10,), 1, ()),
     _layer("frozen", (4, 5, 6), 1, (2, 3), differentiable=False)],
    [helper.make_node("Relu", ["conv_pre"], ["conv"]), helper.make_node("Gemm", ["f", "w"], ["logits"]),
     helper.make_node("Softmax", ["logits"], ["sm"]), helper.make_node("Identity", ["sm"], ["prob"])],
    class_output="prob")


def _peak(a, axes):
    return (a == a.max(axis=axes, keepdims=True)).astype(np.float64)


def _diversity(a):  # Lucid's diversity: row i's sum of cosine similarities of its Gram matrix with every other row's
    flat = a.reshape(a.shape[0], a.shape[1], -1)  # NCHW -> (N, C, S)
    g = np.einsum("ncs,nds->ncd", flat, flat)
    g = g / np.sqrt((g ** 2).sum(axis=(1, 2)))[:, None, None]
    n = len(g)
    return np.array([sum((g[i] * g[j]).sum() for j in range(n) if j != i) / n for i in range(n)])


W = np.array([0.5, -1.0, 2.0, 0.25])

# (id, objective, float64 formula of the batch's values from the activations {layer: (N, ...)})
CASES = [
    ("neuron", O.neuron(MODEL, "conv", 2, (1, 4)), lambda a: a["conv"][:, 2, 1, 4]),
    ("neuron-centre", O.neuron(MODEL, "conv", 2), lambda a: a["conv"][:, 2, 2, 3]),
    ("neuron-nhwc", O.neuron(MODEL, "nhwc", 1, (4, 0)), lambda a: a["nhwc"][:, 4, 0, 1]),
    ("neuron-extra-axis", O.neuron(MODEL, "vol", 1, (3, 2)), lambda a: a["vol"][:, 1, :, 3, 2].sum(axis=1)),
    ("neuron-pre-activation", O.neuron(MODEL, "conv", 3, (0, 0), pre_activation=True),
     lambda a: a["conv_pre"][:, 3, 0, 0]),
    ("channel", O.channel(MODEL, "conv", 3), lambda a: a["conv"][:, 3].mean(axis=(1, 2))),
    ("channel-nhwc", O.channel(MODEL, "nhwc", 0), lambda a: a["nhwc"][..., 0].mean(axis=(1, 2))),
    ("channel-extra-axis", O.channel(MODEL, "vol", 2), lambda a: a["vol"][:, 2].mean(axis=(1, 2, 3))),
    ("direction", O.direction(MODEL, "conv", W), lambda a: (a["conv"] * W[:, None, None]).mean(axis=(2, 3)).sum(axis=1)),
    ("direction-nhwc", O.direction(MODEL, "nhwc", W), lambda a: (a["nhwc"] * W).mean(axis=(1, 2)).sum(axis=1)),
    ("logit", O.logit(MODEL, 7), lambda a: a["logits"][:, 7]),
    ("unit-mean", O.unit_objective(MODEL, "conv", 1, "mean"), lambda a: a["conv"][:, 1].mean(axis=(1, 2))),
    ("unit-centre", O.unit_objective(MODEL, "nhwc", 1, "centre"), lambda a: a["nhwc"][:, 2, 3, 1]),
    ("unit-no-position", O.unit_objective(MODEL, "conv", 0), lambda a: a["conv"][:, 0, 2, 3]),
    ("unit-vector", O.unit_objective(MODEL, "logits", 4, ()), lambda a: a["logits"][:, 4]),
    ("sum", O.neuron(MODEL, "conv", 0, (0, 1)) + O.channel(MODEL, "nhwc", 3),
     lambda a: a["conv"][:, 0, 0, 1] + a["nhwc"][..., 3].mean(axis=(1, 2))),
    ("sum-same-unit", O.neuron(MODEL, "conv", 1, (2, 2)) + O.neuron(MODEL, "conv", 1, (2, 2)), lambda a: 2 * a["conv"][:, 1, 2, 2]),
    ("difference", O.channel(MODEL, "conv", 1) - O.neuron(MODEL, "conv", 1, (4, 5)),
     lambda a: a["conv"][:, 1].mean(axis=(1, 2)) - a["conv"][:, 1, 4, 5]),
    ("scaled", 2.5 * O.neuron(MODEL, "conv", 3, (1, 1)), lambda a: 2.5 * a["conv"][:, 3, 1, 1]),
    ("scaled-right", O.channel(MODEL, "conv", 2) * -3, lambda a: -3 * a["conv"][:, 2].mean(axis=(1, 2))),
    ("divided", O.logit(MODEL, 2) / 4, lambda a: a["logits"][:, 2] / 4),
    ("negated", -O.logit(MODEL, 2), lambda a: -a["logits"][:, 2]),
    ("combination", 2 * O.neuron(MODEL, "nhwc", 1, (0, 5)) - O.channel(MODEL, "conv", 3) + O.logit(MODEL, 4),
     lambda a: 2 * a["nhwc"][:, 0, 5, 1] - a["conv"][:, 3].mean(axis=(1, 2)) + a["logits"][:, 4]),
    ("stack", O.stack([O.neuron(MODEL, "conv", 0, (3, 3)), O.channel(MODEL, "nhwc", 2), O.logit(MODEL, 9)]),
     lambda a: np.array([a["conv"][0, 0, 3, 3], a["nhwc"][1, ..., 2].mean(), a["logits"][2, 9]])),
    ("stack-of-sums", O.stack([O.logit(MODEL, 1) - O.logit(MODEL, 2), 3 * O.logit(MODEL, 0), O.channel(MODEL, "conv", 0)]),
     lambda a: np.array([a["logits"][0, 1] - a["logits"][0, 2], 3 * a["logits"][1, 0], a["conv"][2, 0].mean()])),
    # non-linear: the unit's own activation (the toolbox's back-map seed) and Lucid's diversity
    ("own-activation", O.own_activation(MODEL, "conv", 2),
     lambda a: 0.5 * (a["conv"][:, 2] ** 2 * _peak(a["conv"][:, 2], (1, 2))).sum(axis=(1, 2))),
    ("own-activation-everywhere", O.own_activation(MODEL, "nhwc", 3, at_peak=False),
     lambda a: 0.5 * (a["nhwc"][..., 3] ** 2).sum(axis=(1, 2))),
    ("own-activation-vector", O.own_activation(MODEL, "logits", 5), lambda a: 0.5 * a["logits"][:, 5] ** 2),
    ("own-activation-scaled-sum", 2 * O.own_activation(MODEL, "conv", 1) + O.own_activation(MODEL, "conv", 3),
     lambda a: (a["conv"][:, 1] ** 2 * _peak(a["conv"][:, 1], (1, 2))).sum(axis=(1, 2))
     + 0.5 * (a["conv"][:, 3] ** 2 * _peak(a["conv"][:, 3], (1, 2))).sum(axis=(1, 2))),
    ("own-activation-plus-linear", O.own_activation(MODEL, "conv", 0) - O.neuron(MODEL, "nhwc", 0, (1, 1)),
     lambda a: 0.5 * (a["conv"][:, 0] ** 2 * _peak(a["conv"][:, 0], (1, 2))).sum(axis=(1, 2)) - a["nhwc"][:, 1, 1, 0]),
    ("diversity", O.diversity(MODEL, "conv"), lambda a: _diversity(a["conv"])),
    ("linear-minus-diversity", O.channel(MODEL, "conv", 0) - 0.5 * O.diversity(MODEL, "conv"),
     lambda a: a["conv"][:, 0].mean(axis=(1, 2)) - 0.5 * _diversity(a["conv"])),
    ("stack-non-linear", O.stack([O.own_activation(MODEL, "conv", 0), O.logit(MODEL, 3), O.own_activation(MODEL, "conv", 1)]),
     lambda a: np.array([0.5 * (a["conv"][0, 0] ** 2 * _peak(a["conv"][0, 0], (0, 1))).sum(), a["logits"][1, 3],
                         0.5 * (a["conv"][2, 1] ** 2 * _peak(a["conv"][2, 1], (0, 1))).sum()])),
]


def _acts(objective, rng) -> dict[str, np.ndarray]:
    """Random activations of the objective's targets (every layer the formulas read), float32 as a
    model gives them, and the same values in float64 for the formulas."""
    return {t: rng.standard_normal((BATCH, *s[1:])).astype(np.float32) for t, s in objective.shapes.items()}


@pytest.mark.parametrize("objective, formula", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_value_and_seeds_are_the_formula_and_its_gradient(objective, formula):
    rng = np.random.default_rng(0)
    acts = _acts(objective, rng)
    a64 = {t: v.astype(np.float64) for t, v in acts.items()}
    reference = formula(a64)
    assert reference.shape == (BATCH,)
    seeds = objective.seeds(None if objective.linear else acts, BATCH)
    assert set(seeds) == set(objective.targets) and all(s.dtype == np.float32 for s in seeds.values())
    seeds64 = {t: np.broadcast_to(s, acts[t].shape).astype(np.float64) for t, s in seeds.items()}

    # value: the linear parts are float64 sums of float32 seeds times the activations: each product
    # carries the seed's float32 rounding (F32 relative; bounding with every seed covers them) and
    # the float64 sums a few F64 per term; the non-linear parts are float64 formulas of O(1) values
    # (squares of standard normals, cosines), summed in another order than the reference's
    bound = sum(np.abs(seeds64[t] * a64[t]).reshape(BATCH, -1).sum(axis=1) for t in acts)
    tol = (F32 + 64 * F64) * bound + 64 * F64 * (np.abs(reference) + 1)
    assert np.all(np.abs(objective.value(acts) - reference) <= tol), (objective.value(acts), reference)

    # seeds: <seed, t> against the directional derivative of sum(formula) along t
    direction = {name: rng.standard_normal(a.shape) for name, a in a64.items()}
    inner = sum((seeds64[name] * direction[name]).sum() for name in acts)
    seed_rounding = F32 * sum(np.abs(seeds64[name] * direction[name]).sum() for name in acts)

    def total(h):
        return formula({name: a + h * direction[name] for name, a in a64.items()}).sum()

    if objective.linear:  # linear: the difference quotient with h = 1 is exact but for float64 rounding
        derivative = total(1.0) - total(0.0)
        scale = sum(np.abs(a).sum() + np.abs(direction[n]).sum() for n, a in a64.items())
        fd_error = 64 * F64 * scale * max(1.0, max(np.abs(s).max() for s in seeds64.values()))
    else:  # central differences; |D(h) - D(2h)| = 3/4 |D(2h)'s truncation error| bounds D(h)'s (O(h^2))
        h = 1e-5
        derivative = (total(h) - total(-h)) / (2 * h)
        coarse = (total(2 * h) - total(-2 * h)) / (4 * h)
        fd_error = abs(derivative - coarse) + 64 * F64 * abs(total(0.0)) / h
    assert abs(inner - derivative) <= seed_rounding + fd_error, (inner, derivative, seed_rounding, fd_error)

    if objective.self_seed is not None:  # the in-graph form: seed = mask * target where it peaks
        s = objective.self_seed
        a = acts[s.target]
        weight = s.mask * (a == a.max(axis=s.peak_axes, keepdims=True)) if s.peak_axes else s.mask
        np.testing.assert_array_equal(objective.seeds(acts, BATCH)[s.target], weight * a)


LINEAR = [c for c in CASES if c[1].linear]


@pytest.mark.parametrize("objective", [c[1] for c in LINEAR], ids=[c[0] for c in LINEAR])
def test_in_graph_value_is_the_objective_value(objective):
    """`write_value` (the step graph's value, optimize/stepgraph.py) run by ONNX Runtime on the
    targets' activations and the objective's own seeds gives `objective.value` of the same
    activations."""
    import onnx
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    acts = _acts(objective, rng)
    seed_inputs = {t: f"seed:{t}" for t in objective.targets}
    tape = Tape(GraphFacts(helper.make_model(helper.make_graph([], "empty", [], [])), infer_shapes=False))
    tape.emit("Identity", [O.write_value(tape, objective, seed_inputs)], ["value"])
    nodes, inits = tape.nodes, tape.initializers
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", *objective.shapes[t][1:]])
              for t in objective.targets for n in (t, seed_inputs[t])]
    graph = helper.make_graph(nodes, "value", inputs, [helper.make_tensor_value_info("value", onnx.TensorProto.FLOAT, ["N"])],
                              inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    seeds = objective.seeds(None, BATCH)
    feeds = {**acts, **{seed_inputs[t]: s for t, s in seeds.items()}}
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(["value"], feeds)[0]
    assert got.shape == (BATCH,) and got.dtype == np.float32
    # float32 in the graph: each product rounded once and a sum of n terms in any order (n - 1
    # roundings, each at most F32 of the running sum <= sum |terms|), then the float32 result
    # rounded; the reference is float64 (its own error is far below these)
    terms = sum(np.prod(s[1:]) for s in objective.shapes.values())
    bound = sum(np.abs(seeds[t].astype(np.float64) * acts[t]).reshape(BATCH, -1).sum(axis=1) for t in acts)
    reference = objective.value(acts)
    assert np.all(np.abs(got - reference) <= (terms + 1) * F32 * bound + F32 * np.abs(reference)), (got, reference)


def test_the_non_linear_have_no_in_graph_value():
    with pytest.raises(ValueError, match="not linear"):
        O.write_value(Tape(GraphFacts(helper.make_model(helper.make_graph([], "empty", [], [])), infer_shapes=False)),
                      O.own_activation(MODEL, "conv", 0), {"conv": "seed"})


def test_linear_seeds_need_no_activations_and_non_linear_ones_do():
    assert O.channel(MODEL, "conv", 0).linear and not O.own_activation(MODEL, "conv", 0).linear
    with pytest.raises(ValueError, match="needs the activations"):
        O.own_activation(MODEL, "conv", 0).seeds(None, 1)
    with pytest.raises(ValueError, match="a stack of 2 objectives runs on a batch of 2"):
        O.stack([O.logit(MODEL, 0), O.logit(MODEL, 1)]).seeds(None, 3)
    assert O.logit(MODEL, 0).self_seed is None and (O.own_activation(MODEL, "conv", 0) + O.logit(MODEL, 1)).self_seed is None


@pytest.mark.parametrize("build, message", [
    (lambda: O.neuron(MODEL, "conv", 4), r"^unit 4 out of range for layer 'conv' \(4 units: 0-3\)$"),
    (lambda: O.channel(MODEL, "nhwc", -1), r"^unit -1 out of range for layer 'nhwc' \(4 units: 0-3\)$"),
    (lambda: O.own_activation(MODEL, "conv", 9), r"^unit 9 out of range for layer 'conv'"),
    (lambda: O.unit_objective(MODEL, "conv", 4, "mean"), r"^unit 4 out of range for layer 'conv'"),
    (lambda: O.logit(MODEL, 10), r"^class 10 out of range for layer 'logits' \(10 classes: 0-9\)$"),
    (lambda: O.neuron(MODEL, "conv", 0, (5, 0)), "position 5,0 is outside layer 'conv'"),
    (lambda: O.neuron(MODEL, "conv", 0, (1,)), "position 1 is outside layer 'conv'"),
    (lambda: O.neuron(MODEL, "logits", 0, (0, 0)), "layer 'logits' is not spatial"),
    (lambda: O.unit_objective(MODEL, "conv", 0, "max"), "position max needs an image"),
    (lambda: O.direction(MODEL, "conv", [1.0]), "needs 4 weights, got 1"),
    (lambda: O.channel(MODEL, "frozen", 0), "layer 'frozen' cannot be differentiated back to the input"),
    (lambda: O.by_kind(MODEL, "channel", "conv", 0, (1, 1)), "^position applies to objective neuron only$"),
    (lambda: O.by_kind(MODEL, "sideways", "conv", 0), "unknown objective 'sideways'"),
    (lambda: O.by_kind(MODEL, "neuron", None, 0), "^objective neuron needs layer$"),
    (lambda: O.logit(StandIn([], []), 0), "the model has no class-score output"),
])
def test_errors_speak_the_librarys_words(build, message):
    with pytest.raises(UsageError, match=message):
        build()


def test_unit_objective_reads_positions_as_position_py_does():
    """One meaning of a position: "max" and no position with an image are where the unit fires
    most on it (a forward run), no position without one is the centre, "mean" the channel."""
    act = np.zeros((1, 4, 5, 6), np.float32)
    act[0, 2, 4, 1] = 3.0
    model = StandIn(MODEL._layers.values(), [])
    model.activations = lambda x, names, with_outputs: {"conv": act}
    x = np.zeros((1, 1), np.float32)
    for position in ("max", None):
        seed = O.unit_objective(model, "conv", 2, position, x).seeds(None, 1)["conv"]
        assert seed[0, 2, 4, 1] == 1 and seed.sum() == 1
    assert O.unit_objective(model, "conv", 2).seeds(None, 1)["conv"][0, 2, 2, 3] == 1
    assert O.unit_objective(model, "conv", 2, "mean").description == O.channel(model, "conv", 2).description


def test_by_kind_and_pre_activation():
    assert O.by_kind(MODEL, "logit", None, 3).targets == ("logits",)
    assert O.by_kind(MODEL, "neuron", "conv", 3, pre_activation=True).targets == ("conv_pre",)
    assert O.by_kind(MODEL, "channel", "conv", 3).targets == ("conv",)
    assert O.pre_relu(MODEL, "conv").name == "conv_pre" and O.pre_relu(MODEL, "nhwc").name == "nhwc"


def test_pre_softmax_tensor():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["sm"]),
             helper.make_node("Identity", ["sm"], ["prob"]), helper.make_node("Relu", ["logits"], ["r"])]
    m = GraphFacts(helper.make_model(helper.make_graph(nodes, "g", [], [])), infer_shapes=False)
    assert O.pre_softmax_tensor(m, "prob") == "logits"
    assert O.pre_softmax_tensor(m, "sm") == "logits"
    assert O.pre_softmax_tensor(m, "r") == "r"
    assert O.pre_softmax_tensor(m, "logits") == "logits"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("objectives") / "tiny.onnx"
    make_conv_model(path)
    return ProbeModel.load(path, device="cpu")


@pytest.mark.parametrize("build", [
    lambda m: O.own_activation(m, "relu2", 3),
    lambda m: O.own_activation(m, "relu1", 1, at_peak=False),
    lambda m: 3 * O.own_activation(m, "conv2", 2) + O.own_activation(m, "conv2", 5),
], ids=["at-peak", "whole-channel", "scaled-sum"])
def test_the_in_graph_form_gives_the_gradient_of_the_seeds_from_a_forward(tiny, build):
    """The self-seeded graph run with `self_seed.mask` (no forward first) and the plain gradient graph
    run with the seeds read from a forward give the same input gradient: bit for bit, because the
    square's Mul rule hands each factor exactly half of mask * target (objectives.self_seeded)."""
    model = tiny
    objective = build(model)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    s = objective.self_seed
    one_run = model.gradient_session([s.target], self_seeded=True, peak_axes=s.peak_axes).run(x, {s.target: s.mask})
    two_runs = model.gradient_session(objective.targets).run(x, objective.seeds_for(model, x))
    assert np.abs(two_runs["grad"]).max() > 0  # a live unit: not two zero maps
    np.testing.assert_array_equal(one_run["grad"], two_runs["grad"])


@pytest.mark.parametrize("build", [
    lambda m: O.own_activation(m, "relu2", 3),  # an in-graph seed: the self-seeded graph, one run
    lambda m: O.stack([O.neuron(m, "relu2", u, (1, 2)) for u in range(5)]),  # linear, one seed per row
    lambda m: O.channel(m, "conv2", 1) - 1e-2 * O.diversity(m, "relu1"),  # non-linear: a forward first
], ids=["self-seeded", "linear-stack", "forward-first"])
def test_the_one_gradient_call_is_the_session_with_the_objectives_seeds(tiny, build):
    """ProbeModel.gradient equals the gradient graph run with the objective's own seeds (read from
    a forward), whichever form it picks; in chunks of `batch_size` rows a linear or self-seeded
    objective gives the same rows bit for bit."""
    model = tiny
    objective = build(model)
    x = np.random.default_rng(7).standard_normal((5, 3, 16, 16)).astype(np.float32)
    run = model.gradient(x, objective)
    reference = model.gradient_session(objective.targets).run(x, objective.seeds_for(model, x))
    assert np.abs(reference["grad"]).max() > 0
    np.testing.assert_array_equal(run.input, reference["grad"])
    np.testing.assert_array_equal(run.values(), objective.value({t: reference[t] for t in objective.targets}))
    if objective.linear or objective.self_seed is not None:
        np.testing.assert_array_equal(model.gradient(x, objective, batch_size=2).input, run.input)
    given = model.gradient(x, objective, activations={t: reference[t] for t in objective.targets})
    np.testing.assert_array_equal(given.input, reference["grad"])


def test_the_one_gradient_call_takes_other_tensors(tiny):
    x = np.random.default_rng(8).standard_normal((2, 3, 16, 16)).astype(np.float32)
    objective = O.logit(tiny, 1)
    run = tiny.gradient(x, objective, mode="guided", wrt=[tiny.input_name, "relu1"], extra_outputs=["conv2"])
    session = tiny.gradient_session(objective.targets, wrt=[tiny.input_name, "relu1"], mode="guided")
    reference = session.run(x, objective.seeds(None, 2))
    np.testing.assert_array_equal(run.input, reference["grad"])
    np.testing.assert_array_equal(run.grads["relu1"], reference["grad:relu1"])
    assert run.activations["conv2"].shape[0] == 2 and set(run.grads) == {tiny.input_name, "relu1"}
