"""Feature visualization end to end: the activation rises, the priors remove high frequencies,
runs are reproducible and independent of batching, and the command line behaves."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxprobe.cli import main
from onnxprobe.model import ProbeModel
from onnxprobe.errors import ParameterError
from onnxprobe.optimize import Optimizer, RenderSettings, get_preset, objectives, render_units, row_seed
from tests.conftest import ROOT, make_conv_model


@pytest.fixture(scope="module")
def digits(digits_model_path):
    return ProbeModel.load(digits_model_path, device="cpu")


@pytest.fixture(scope="module")
def resnet():
    import torch
    import torchvision
    from tests.fixtures_torch import calibrate_batchnorm, export_module, seeded

    with seeded(0):
        module = torchvision.models.resnet18(weights=None)
    example = torch.randn(1, 3, 64, 64)
    calibrate_batchnorm(module, example)
    return ProbeModel.load(export_module(module, example, name="resnet18"), device="cpu")


def noise_statistics(model: ProbeModel, layer: str, unit: int, samples: int = 64, seed: int = 0) -> tuple[float, float]:
    """(mean, standard deviation) of the unit's objective over images of uniform noise in the
    model's valid input range: the unit's own scale, and what unstructured inputs give it."""
    low, high = model.spec.valid_range()
    rng = np.random.default_rng(seed)
    x = (low + (high - low) * rng.random((samples, *model.input_shape[1:]))).astype(np.float32)
    objective = objectives.neuron(model, layer, unit)
    values = objective.value(model.activations(x, objective.targets, with_outputs=False))
    return float(np.mean(values)), float(np.std(values))


def rises(model: ProbeModel, layer: str, results) -> np.ndarray:
    """(best - noise mean) / noise standard deviation, for every unit and restart."""
    out = []
    for r in results:
        mean, std = noise_statistics(model, layer, r.unit)
        assert std > 0, f"unit {r.unit} of {layer} is constant on noise: no scale to measure a rise against"
        out += [(b - mean) / std for b in r.best_activation]
    return np.asarray(out)


# What holds on any machine: the optimisation is a chaotic float32 iteration, so one unit's
# trajectory from one seed depends on the CPU's kernels (one machine took ResNet-18 layer3.0.conv1
# unit 0 from 1.16 to 10.9 and failed a per-unit "tenfold", another passed). What does not depend
# on the machine is whether the optimizer beats blind search: `steps` x `rows` evaluations of noise
# images reach about sqrt(2 ln(100 x 8)) = 3.7 standard deviations above the noise mean (the
# expected maximum of 800 Gaussian samples). So: over 4 units x 2 restarts, the median best must
# lie RISE_MEDIAN = 5 noise standard deviations above the noise mean (beyond any blind search of
# that budget) and 7 of 8 runs at least RISE_FLOOR = 3.7 (as far as blind search gets at best).
# Measured on a 2-core CI-like machine: medians 9.8 (digits conv2), 20.5 (fc1), 20 (logits), 9.2
# (ResNet layer3.0.conv1); smallest single runs 7.9, 4.7, 13.6, 8.0.
RISE_MEDIAN = 5.0
RISE_FLOOR, RISE_SHARE = 3.7, 7 / 8


# Presets: one paper preset (set4, whose progress-policy step was scale-free from the start) and
# Lucid here. set1-set3's constant rate is scale-free since the step reference of
# optimize/presets.py; whether they draw what a judge recognizes is measured by
# test_recognizability.py, and on ImageNet by bench/bench_quality.py.
@pytest.mark.parametrize("which, preset, layer, units, steps", [
    ("digits", "set4", "conv2", [0, 1, 2, 3], 100),
    ("digits", "set4", "fc1", [0, 1, 2, 3], 100),
    ("digits", "set4", "logits", [0, 1, 2, 3], 100),
    ("resnet", "lucid", "/layer3/layer3.0/conv1/Conv_output_0", [0, 1, 2, 3], 100),
])
def test_activation_rises(request, which, preset, layer, units, steps):
    model = request.getfixturevalue(which)
    results = render_units(model, layer, units, RenderSettings.resolve(preset, steps, seed=1, batch=2 * len(units), restarts=2))
    gains = rises(model, layer, results)
    report = ", ".join(f"{r.unit}: " + "/".join(f"{i:.3g}->{b:.3g}" for i, b in zip(r.initial_activation, r.best_activation))
                       for r in results) + f"; best in noise standard deviations above the noise mean {np.round(gains, 1).tolist()}"
    assert np.median(gains) >= RISE_MEDIAN, f"{which} {layer} ({preset}, {steps} steps) {report}"
    assert np.mean(gains >= RISE_FLOOR) >= RISE_SHARE, f"{which} {layer} ({preset}, {steps} steps) {report}"


def _high_frequency_energy(images: np.ndarray, cutoff: float = 0.5) -> float:
    """Share of the spectral energy (mean removed) above `cutoff` of Nyquist, over HxWxC images."""
    x = np.moveaxis(np.asarray(images, np.float64), -1, 1).reshape(-1, *images.shape[1:3])
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x)) ** 2
    radius = np.hypot(np.fft.fftfreq(x.shape[1])[:, None], np.fft.fftfreq(x.shape[2])[None, :]) / 0.5
    return float(power[:, radius > cutoff].sum() / power.sum())


def test_priors_lower_high_frequencies(tiny):
    from dataclasses import replace

    set3 = get_preset("set3", steps=120)
    plain = replace(set3, name="plain", decay=0.0, blur_radius=0.0, blur_every=0)
    obj = objectives.stack([objectives.neuron(tiny, "conv2", u) for u in range(6)])
    energy = {}
    for preset in (set3, plain):
        opt = Optimizer(tiny, obj, preset, seed=2, batch=6).run()
        energy[preset.name] = _high_frequency_energy(np.stack([opt.best_image(i) for i in range(6)]))
    assert energy["set3"] < 0.5 * energy["plain"], energy


def test_same_seed_same_images_regardless_of_batching(tiny):
    kwargs = dict(preset="set1", steps=40, seed=7, restarts=2)
    together = render_units(tiny, "conv2", [0, 2, 5], RenderSettings.resolve(batch=6, **kwargs))
    again = render_units(tiny, "conv2", [0, 2, 5], RenderSettings.resolve(batch=6, **kwargs))
    alone = render_units(tiny, "conv2", [5], RenderSettings.resolve(batch=1, **kwargs))
    for a, b in zip(together, again):
        assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert all(np.array_equal(x, y) for x, y in zip(together[2].images, alone[0].images))
    other = render_units(tiny, "conv2", [5], RenderSettings.resolve(batch=1, **{**kwargs, "seed": 8}))
    assert not np.array_equal(other[0].images[0], alone[0].images[0])


@pytest.mark.parametrize("position, same_as", [
    ("mean", lambda m: objectives.channel(m, "conv2", 4, pre_activation=True)),
    ("centre", lambda m: objectives.neuron(m, "conv2", 4, pre_activation=True)),
    (None, lambda m: objectives.neuron(m, "conv2", 4, pre_activation=True)),
    ((1, 2), lambda m: objectives.neuron(m, "conv2", 4, (1, 2), pre_activation=True)),
])
def test_render_units_reads_positions_as_the_objective_module(tiny, position, same_as):
    """`position` is the typed position of onnxprobe.position, read by the objective module (no
    re-interpretation on the way): the images are those of the objective it names."""
    kwargs = dict(preset="set1", steps=6, seed=3)
    [result] = render_units(tiny, "conv2", [4], RenderSettings.resolve(**kwargs), position=position)
    direct = Optimizer(tiny, same_as(tiny), get_preset("set1", steps=6), seed=[row_seed(3, "conv2", 4, 0)]).run()
    assert result.objective == same_as(tiny).description
    assert np.array_equal(result.images[0], direct.best_image(0))


def test_render_units_refuses_max_without_an_image(tiny):
    with pytest.raises(ParameterError, match="^position max needs an image") as caught:
        render_units(tiny, "conv2", [0], RenderSettings.resolve("set1", steps=2), position="max")
    assert caught.value.params == ("position",)


def _linear_unit_maximum(model: ProbeModel, conv: str, unit: int) -> float:
    """The exact maximum over the valid input range of a first-layer conv unit away from the border:
    bias + sum of max(w * low, w * high), from the ONNX weights."""
    node = next(n for n in model.proto.graph.node if n.output[0] == conv)
    w, bias = model.facts.const(node.input[1])[unit], model.facts.const(node.input[2])[unit]
    low, high = (np.asarray(v, np.float64).reshape(-1, 1, 1) for v in model.spec.valid_range())
    return float(bias + np.maximum(w * low, w * high).sum())


# Both units start below zero (near-grey start); in 80 steps the fft parameterization reaches
# 56-63 % of the exact maximum the image range permits, the pixel one 29-32 %.
@pytest.mark.parametrize("preset, param, share", [("lucid", "fft", 0.4), ("lucid", "pixel", 0.2)])
def test_lucid_parameterization_rises(tiny, preset, param, share):
    result = render_units(tiny, "conv1", [1, 3], RenderSettings.resolve(preset, 80, param, seed=0, batch=2))
    for r in result:
        assert r.best_activation[0] >= share * _linear_unit_maximum(tiny, "conv1", r.unit), r.to_json()
        assert r.images[0].shape == (24, 24, 3) and r.images[0].dtype == np.uint8


def test_step_at_a_time(tiny):
    opt = Optimizer(tiny, objectives.neuron(tiny, "conv2", 1), get_preset("set3", steps=12), seed=0).start()
    first = opt.image(0)
    opt.step(5)
    assert len(opt.history) == 5 and not opt.done
    assert not np.array_equal(first, opt.image(0))
    opt.step(100)
    assert opt.done and len(opt.history) == 12
    assert opt.best_activation[0] == pytest.approx(max(h[0] for h in opt.history), rel=1e-5)


def _objective_of(model, objective, x) -> np.ndarray:
    """The objective of each row of `x` from a plain forward run: sum(seed * activation)."""
    acts = model.activations(x, objective.targets, with_outputs=False)
    seeds = objective.seeds(None, len(x))
    return sum((np.broadcast_to(seeds[t], acts[t].shape).astype(np.float64) * acts[t]).reshape(len(x), -1).sum(axis=1)
               for t in objective.targets)


@pytest.mark.parametrize("preset", ["lucid", "set3"])
def test_initial_and_best_are_measured_on_the_images_themselves(tiny, preset):
    """`initial` and `best` are the objective of the starting and best images as they are, at the
    model's resolution. Lucid's steps see randomly transformed images: its step-0 value was
    reported as `initial`, so `optimize --preset lucid --steps 2` could report best < initial.
    (Lucid's own start is a near-uniform grey that transforms barely change: a start of visible
    noise, init_sd 1, shows the difference.)"""
    chosen = replace(get_preset(preset), init_sd=1.0, steps=2) if preset == "lucid" else get_preset(preset, steps=2)
    objective = objectives.neuron(tiny, "conv2", 1)
    start = Optimizer(tiny, objective, chosen, seed=3, batch=2).start().current_input()
    opt = Optimizer(tiny, objective, chosen, seed=3, batch=2).run()
    initial, best = _objective_of(tiny, objective, start), _objective_of(tiny, objective, opt.current_input(best=True))
    # both sides are float32 runs of the same network on the same input (the forward graph here,
    # the gradient graph in the optimizer): they differ by rounding only, a few float32 ulps of
    # the largest partial sums (|value| <= ~10 here): 1e-5 relative to 1 + |value| covers that
    np.testing.assert_allclose(opt.initial_activation, initial, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(opt.best_activation, best, rtol=1e-5, atol=1e-5)
    final = _objective_of(tiny, objective, opt.current_input(best=False))
    np.testing.assert_allclose(opt.final_activation, final, rtol=1e-5, atol=1e-5)


def _relu6_model(path, op: str = "Clip"):
    """conv 3x3 (pad 1, 2 units) -> ReLU6 as MobileNetV2 exports it (Clip with Constant bounds) ->
    global pool, on inputs 0..1. Unit 0 (nine weights 0.5, bias -3) is 9 * 0.5 * 0.5 - 3 = -0.75 before
    the Clip on lucid's grey start (0 after it) and at most 9 * 0.5 - 3 = 1.5 on a white image: a unit
    that can fire but starts off."""
    from onnx import TensorProto, numpy_helper

    w = np.stack([np.full((1, 3, 3), 0.5, np.float32), np.random.default_rng(0).standard_normal((1, 3, 3))]).astype(np.float32)
    b = np.array([-3.0, 0.1], np.float32)
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0, np.float32))),
             helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6, np.float32))),
             helper.make_node(op, ["conv", "lo", "hi"] if op == "Clip" else ["conv"], ["relu6"], name="relu6"),
             helper.make_node("GlobalAveragePool", ["relu6"], ["pool"], name="pool"),
             helper.make_node("Flatten", ["pool"], ["out"], name="flat")]
    graph = helper.make_graph(nodes, "relu6", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 12, 12])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_relu6_unit_off_at_the_start_is_optimized_through_its_input(tmp_path):
    """A ReLU6 (Clip 0..6) passes no gradient at 0: optimizing its output left a unit that starts
    off where it was. Like a ReLU's, it is optimized through its input, and it fires."""
    model = ProbeModel.load(_relu6_model(tmp_path / "relu6.onnx"), device="cpu")
    assert objectives.pre_relu(model, "relu6").name == "conv"
    assert objectives.neuron(model, "relu6", 0, pre_activation=True).targets == ("conv",)
    result = render_units(model, "relu6", [0], RenderSettings.resolve("lucid", 40, seed=0, batch=1))[0]  # as optimize / atlas
    after = model.activations(result.inputs[0][None], ["relu6"], with_outputs=False)["relu6"][0, 0, 6, 6]
    assert result.initial_activation[0] < 0  # the pre-activation at the start: the ReLU6 is off, its gradient 0
    assert after > 1.0, after  # of the 1.5 a white patch gives (it reached 1.39 in 40 steps)


@pytest.mark.parametrize("op", objectives.FLAT_ACTIVATIONS)
def test_flat_activations_are_optimized_through_their_input(tmp_path, op):
    model = ProbeModel.load(_relu6_model(tmp_path / f"{op}.onnx", op), device="cpu")
    assert objectives.pre_relu(model, "relu6").name == "conv"
    assert objectives.pre_relu(model, "pool").name == "pool"  # not an activation: itself


def test_mobilenet_relu6_layers_are_optimized_through_their_conv():
    model = ProbeModel.load(ROOT / "models" / "imagenet" / "mobilenet_v2.onnx", device="cpu")
    clips = [layer for layer in model.layers if layer.op == "Clip"]
    assert len(clips) == 35
    assert all(model.layer(objectives.pre_relu(model, c.name).name).op == "Conv" for c in clips)


def test_command_writes_images_montage_and_record(tiny_path, tmp_path):
    out = tmp_path / "out"
    code = main(["optimize", str(tiny_path), "--device", "cpu", "--layer", "conv2", "--unit", "0-1", "--restarts", "2",
                 "--steps", "6", "--out", str(out), "--quiet"])
    assert code == 0
    record = json.loads((out / "conv2" / "unit_00001.json").read_text())
    # the default preset is lucid (issue 14: it measures best), Adam step 0.05
    assert record["steps"] == 6 and record["preset"] == "lucid" and len(record["best_activation"]) == 2
    assert record["hyperparameters"]["lr"] == 0.05
    for name in ("unit_00000_restart00.png", "unit_00000_restart01.png", "unit_00000_montage.png",
                 "unit_00001_restart01.png"):
        assert (out / "conv2" / name).stat().st_size > 0


def _non_differentiable_model(path):
    model = make_conv_model(size=(16, 16))
    graph = model.graph
    graph.node.insert(2, helper.make_node("Round", ["relu1"], ["rounded"], name="round"))
    graph.node.insert(3, helper.make_node("Add", ["rounded", "relu1"], ["mixed"], name="mixed"))
    for node in graph.node:
        if node.name == "pool1":
            node.input[0] = "rounded"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("extra, fragment", [
    (["--layer", "conv2", "--unit", "0", "--preset", "set9"], "unknown preset"),
    (["--layer", "conv2", "--unit", "6"], "out of range"),
    (["--layer", "conv2", "--unit", "0", "--preset", "set1", "--param", "fft"], "pixel-space"),
    (["--layer", "nope", "--unit", "0"], "no layer named"),
    (["--layer", "conv2", "--unit", "0", "--position", "40,40"], "outside"),
    (["--layer", "conv2", "--unit", "0", "--position", "max"], "--position max needs an image"),
    (["--layer", "conv2", "--unit", "0", "--objective", "channel", "--position", "mean"],
     "--position applies to --objective neuron only"),
    (["--unit", "0", "--objective", "logit", "--position", "centre"], "--position applies to --objective neuron only"),
    (["--unit", "0"], "--objective neuron needs --layer"),
    (["--unit", "0", "--objective", "channel"], "--objective channel needs --layer"),
])
def test_bad_input_is_one_line_exit_2(tiny_path, tmp_path, capsys, extra, fragment):
    code = main(["optimize", str(tiny_path), "--out", str(tmp_path / "o"), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_layer_without_gradient_is_one_line_exit_2(tmp_path, capsys):
    path = _non_differentiable_model(tmp_path / "round.onnx")
    code = main(["optimize", str(path), "--layer", "conv2", "--unit", "0", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("onnxprobe: error:"), err


def test_the_optimizer_takes_a_resolved_preset(tiny):
    """Typed values past the boundary: a preset name is resolved once by the caller (get_preset)."""
    with pytest.raises(TypeError, match="get_preset"):
        Optimizer(tiny, objectives.neuron(tiny, "conv2", 0), "set3")
    assert Optimizer(tiny, objectives.neuron(tiny, "conv2", 0)).preset == get_preset("lucid")
