"""Module paths (graph/names.py): the names a PyTorch user knows, from both exporters' records, and
the one resolver every command uses.

The first tests build graphs by hand (no torch); the rest export small torchvision models (random
weights, 64x64 input) with the default (dynamo) exporter and the legacy one, once per session.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxprobe.errors import UsageError
from onnxprobe.fsutil import load_npz
from onnxprobe.graph.layers import LayerInfo
from onnxprobe.graph.names import SCOPES_KEY, LayerNames, module_names, node_scopes

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "models" / "imagenet" / "samples" / "astronaut.jpg"
SIZE = 64


# ---- hand-built graphs -----------------------------------------------------------------------------
def _graph(nodes, outputs=("out",)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 4]) for o in outputs])
    return helper.make_model(graph)


def _relu(inp, out, scopes=None, name=""):
    node = helper.make_node("Relu", [inp], [out], name=name or f"node_{out}")
    if scopes is not None:
        prop = node.metadata_props.add()
        prop.key, prop.value = SCOPES_KEY, repr(["", *scopes, out])
    return node


def test_legacy_scopes_rebuild_qualified_names():
    names = ["/layer2/layer2.0/downsample/downsample.0/Conv",
             "/features/features.3/features.3.1/block/block.0/block.0.2/Mul",
             "/block/block.0/block/block.1/block.1.0/Relu",
             "/features.0/features.0.0/Conv",  # a ModuleList's child: the list itself never runs
             "/Flatten"]
    model = _graph([helper.make_node("Relu", ["x"], [f"t{i}"], name=n) for i, n in enumerate(names)], ["t4"])
    scopes = node_scopes(model)
    assert scopes["t0"][-1] == "layer2.0.downsample.0"
    assert scopes["t1"] == ("features", "features.3", "features.3.1", "features.3.1.block", "features.3.1.block.0",
                            "features.3.1.block.0.2")
    assert scopes["t2"][-1] == "block.0.block.1.0"
    assert scopes["t3"] == ("features.0", "features.0.0")
    assert "t4" not in scopes  # a node at the root has no module


def test_legacy_call_suffix_is_stripped_unless_a_parameter_names_it():
    weight = helper.make_tensor("blk.conv_1.weight", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="/blk/act/Relu"),
             helper.make_node("Relu", ["a"], ["b"], name="/blk/act_1/Relu"),  # the second call of blk.act
             helper.make_node("Mul", ["b", "blk.conv.weight"], ["c"], name="/blk/conv/Mul"),
             helper.make_node("Mul", ["c", "blk.conv_1.weight"], ["d"], name="/blk/conv_1/Mul")]  # a module conv_1
    model = _graph(nodes, ["d"])
    model.graph.initializer.extend([weight, helper.make_tensor("blk.conv.weight", TensorProto.FLOAT, [1], [1.0])])
    scopes = node_scopes(model)
    assert scopes["b"][-1] == "blk.act"
    assert scopes["d"][-1] == "blk.conv_1"


def test_a_module_names_its_last_output_and_outer_modules_alias_it():
    nodes = [_relu("x", "r1", ["blk", "blk.relu"]),
             _relu("r1", "inner", ["blk"]),  # read inside blk only: no module's output
             _relu("inner", "r2", ["blk", "blk.relu"]),
             _relu("r2", "out", [])]
    names = module_names(_graph(nodes), ["r1", "inner", "r2", "out"])
    assert names.path == {"r2": "blk.relu"}  # the first call (r1) keeps only its ONNX name
    assert names.scope["r1"] == "blk.relu" and names.scope["inner"] == "blk"
    assert names.aliases["r2"] == ("blk",)
    assert "out" not in names.scope


def test_an_onnx_name_wins_over_another_layers_module_path():
    nodes = [_relu("x", "relu", ["relu"]), _relu("relu", "relu_1", ["relu"]), _relu("relu_1", "out", [])]
    names = module_names(_graph(nodes), ["relu", "relu_1", "out"])
    assert "relu_1" not in names.path  # its path 'relu' is the first tensor's ONNX name
    assert names.scope["relu_1"] == "relu"


def test_unreadable_scopes_are_no_scopes():
    node = _relu("x", "out")
    prop = node.metadata_props.add()
    prop.key, prop.value = SCOPES_KEY, "__import__('os').system('false')"
    assert node_scopes(_graph([node])) == {}


def _layer(name, path=None, aliases=()):
    return LayerInfo(name, "Relu", (None, 4), 1, (), None, module_path=path, module_aliases=aliases)


def test_resolver_onnx_name_path_tail_and_ambiguity():
    layers = LayerNames([_layer("relu_8", "layer2.1.relu", ("layer2.1", "layer2")), _layer("getitem_27", "layer2.1.bn2"),
                         _layer("getitem_6", "layer1.0.bn2"), _layer("linear", "heads.fc"), _layer("add_3")])
    assert layers.resolve("relu_8").name == "relu_8"
    assert layers.resolve("layer2.1.relu").name == "relu_8"
    assert layers.resolve("layer2").name == "relu_8"
    assert layers.resolve("fc").name == "linear"  # a unique tail, whole atoms
    with pytest.raises(UsageError, match=r"'bn2' is ambiguous: 2 module paths end with it \(layer2.1.bn2, layer1.0.bn2\)"):
        layers.resolve("bn2")
    with pytest.raises(UsageError, match="no layer named 'c'"):
        layers.resolve("c")  # not a tail of 'heads.fc': atoms, not characters
    message = ""
    try:
        layers.resolve("layer2.1.conv2")
    except UsageError as error:
        message = str(error)
    assert "did you mean" in message and "'layer2.1.bn2'" in message and "\n" not in message


# ---- torchvision exports -----------------------------------------------------------------------------
EXPORTERS = ("dynamo", "legacy")


def _export(module, x, name: str, exporter: str) -> Path:
    """`module` exported by `exporter` into tests/.cache/onnx (gitignored), named after the module's
    fingerprint and the exporter's version, so a later session skips the (slow) exporter. Written in
    a scratch folder under its final name (the dynamo export's `.onnx.data` is named in the .onnx),
    then moved: the data first, so a finished .onnx always has its data."""
    import tempfile

    import torch

    from tests.fixtures_torch import CACHE_DIR, fingerprint

    versions = torch.__version__ + (("|" + __import__("onnxscript").__version__) if exporter == "dynamo" else "")
    key = hashlib.blake2b(f"{fingerprint(module)}|{tuple(x.shape)}|{exporter}|{versions}".encode(), digest_size=6).hexdigest()
    path = CACHE_DIR / f"names-{name}-{exporter}-{key}.onnx"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        staged = Path(scratch) / path.name
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation, tracer warnings
            if exporter == "dynamo":
                torch.onnx.export(module, (x,), str(staged))  # the default: weights in <file>.data
            else:
                torch.onnx.export(module, (x,), str(staged), dynamo=False)
        for file in sorted(Path(scratch).iterdir(), key=lambda f: f.suffix == ".onnx"):
            os.replace(file, CACHE_DIR / file.name)
    return path


@pytest.fixture(scope="session")
def torchvision_exports():
    """{(model name, exporter): (path, torch module)}: resnet18 and mobilenet_v3_small, random
    weights with non-trivial BatchNorm statistics, exported at 1x3x64x64 by both exporters."""
    pytest.importorskip("onnxscript", reason="the default exporter needs onnxscript (a test dependency)")
    import torch
    import torchvision

    from tests.fixtures_torch import calibrate_batchnorm, seeded

    out = {}
    for name in ("resnet18", "mobilenet_v3_small"):
        with seeded(0):
            module = getattr(torchvision.models, name)(weights=None)
        x = torch.zeros(1, 3, SIZE, SIZE)
        module = calibrate_batchnorm(module, x)
        for exporter in EXPORTERS:
            out[(name, exporter)] = (_export(module, x, name, exporter), module)
    return out


@pytest.fixture(scope="session")
def loaded(torchvision_exports):
    from onnxprobe.model import ProbeModel

    return {key: ProbeModel.load(path, device="cpu") for key, (path, _) in torchvision_exports.items()}


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_resnet18_module_paths(loaded, exporter):
    model = loaded[("resnet18", exporter)]
    paths = {layer.module_path: layer for layer in model.layers if layer.module_path}
    assert len(paths) == sum(1 for layer in model.layers if layer.module_path)  # one tensor per path
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    for wanted in ["relu", "maxpool", "avgpool", "fc"] + [f"{b}.relu" for b in blocks]:
        assert wanted in paths, f"{exporter}: no layer has the module path {wanted}"
    for block in blocks:  # a block's output is its last ReLU; the Add inside it is no module's output
        relu = model.layer(f"{block}.relu")
        assert relu.op == "Relu" and block in relu.module_aliases and model.layer(block) is relu
        adds = [layer for layer in model.layers if layer.op == "Add" and layer.module_scope == block]
        assert len(adds) == 1 and adds[0].module_path is None
    # the Conv with its BatchNorm folded: the dynamo exporter records the BatchNorm, the legacy one the Conv
    conv = model.layer("layer2.1.bn2" if exporter == "dynamo" else "layer2.1.conv2")
    assert conv.op == "Conv"
    for layer in model.layers:  # every path shown resolves to its own layer
        for path in layer.module_paths:
            assert model.layer(path) is layer


def test_mobilenet_v3_paths_agree_across_exporters(loaded):
    """Activations, pools, SE gates and residual Adds get the same module paths from both exporters
    (the Convs differ only where a BatchNorm was folded: dynamo names the BN, legacy the Conv)."""
    def named(model):
        return {layer.module_path for layer in model.layers if layer.module_path and layer.op != "Conv"}

    dynamo, legacy = loaded[("mobilenet_v3_small", "dynamo")], loaded[("mobilenet_v3_small", "legacy")]
    assert named(dynamo) == named(legacy)
    assert "features.4.block.0.2" in named(dynamo)  # a Sequential in a Sequential: numbered atoms
    assert model_fraction(dynamo) > 0.9 and model_fraction(legacy) > 0.9


def model_fraction(model) -> float:
    return sum(1 for layer in model.layers if layer.module_path) / len(model.layers)


@pytest.mark.parametrize("name, path", [("resnet18", "layer2.1.relu"), ("mobilenet_v3_small", "features.4.block.2")])
def test_a_module_path_is_the_same_tensor_under_both_exporters(torchvision_exports, loaded, name, path):
    """The tensor each exporter's `path` names holds what PyTorch's forward hook on that module
    sees last (float64 reference, tolerance from PyTorch's own float32 error)."""
    import torch

    from tests.fixtures_torch import judge

    module = torchvision_exports[(name, "dynamo")][1]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, SIZE, SIZE)).astype(np.float32))
    seen = {}
    hook = module.get_submodule(path).register_forward_hook(lambda m, i, o: seen.__setitem__("out", o.detach()))
    try:
        with torch.no_grad():
            module.float()(x)
            ref32 = seen["out"].numpy()
            module.double()(x.double())
            ref64 = seen["out"].numpy()
    finally:
        hook.remove()
        module.float()
    for exporter in EXPORTERS:
        model = loaded[(name, exporter)]
        layer = model.layer(path)
        ours = model.activations(x.numpy(), [path])[layer.name]
        judge(f"{name} {exporter} {path}", ours, ref64, ref32).check()


def test_ambiguous_tail_is_refused_with_candidates(loaded):
    with pytest.raises(UsageError) as error:
        loaded[("resnet18", "dynamo")].layer("bn2")
    assert "layer1.0.bn2" in str(error.value) and "ambiguous" in str(error.value)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "onnxprobe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_with_module_paths_and_relative_paths(torchvision_exports, loaded, tmp_path):
    """`layers` (text under one exporter, --json under the other) and `activations --layer
    layer2.1.relu` under both, from a working folder with relative paths; the .npz stays keyed by
    the ONNX name; an ambiguous tail is one line and exit 2."""
    for exporter in EXPORTERS:  # the model and the dynamo export's .data (which the .onnx names)
        source = torchvision_exports[("resnet18", exporter)][0]
        for file in source.parent.glob(source.name + "*"):
            shutil.copy(file, tmp_path / file.name)
    shutil.copy(SAMPLE, tmp_path / "photo.jpg")
    dynamo, legacy = (torchvision_exports[("resnet18", e)][0].name for e in EXPORTERS)  # relative to tmp_path

    text = _cli(tmp_path, "layers", dynamo)
    assert text.returncode == 0, text.stderr
    assert "module paths for" in text.stdout and "layer2.1.relu = layer2.1, layer2" in text.stdout
    assert "(in layer2.1)" in text.stdout  # the block's Add: computed there, the output of no module
    listed = json.loads(_cli(tmp_path, "layers", legacy, "--json").stdout)
    relu = [entry for entry in listed if entry["module_path"] == "layer2.1.relu"]
    assert len(relu) == 1 and relu[0]["module_aliases"] == ["layer2.1", "layer2"] and relu[0]["op"] == "Relu"
    assert relu[0]["name"] == loaded[("resnet18", "legacy")].layer("layer2.1.relu").name

    shapes = {}
    for exporter, model in zip(EXPORTERS, (dynamo, legacy)):
        run = _cli(tmp_path, "activations", model, "photo.jpg", "--layer", "layer2.1.relu", "--out", f"{exporter}.npz",
                   "--grid", f"{exporter}.png")
        assert run.returncode == 0, run.stderr
        assert "'layer2.1.relu'" in run.stdout and (tmp_path / f"{exporter}.png").exists()
        onnx_name = loaded[("resnet18", exporter)].layer("layer2.1.relu").name
        saved = load_npz(tmp_path / f"{exporter}.npz")  # (the legacy names start with '/': stored renamed)
        assert list(saved) == [onnx_name]  # the ONNX name is the key in files
        shapes[exporter] = saved[onnx_name].shape
    assert shapes["dynamo"] == shapes["legacy"] == (128, SIZE // 8, SIZE // 8)

    refused = _cli(tmp_path, "activations", dynamo, "photo.jpg", "--layer", "bn2", "--out", "refused.npz")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0 and "ambiguous" in refused.stderr
    assert "layer1.0.bn2" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "refused.npz").exists()


def test_viewer_and_atlas_pages_show_the_module_path(tmp_path):
    """What a person reads shows the module path; links and files keep the ONNX name."""
    from onnxprobe.atlas.site import AtlasLayer, write_site
    from onnxprobe.viewer.state import LayerEntry, ViewerState

    state = ViewerState([LayerEntry("relu_8", 4, True, 1, (2, 3), "layer2.1.relu"), LayerEntry("add_3", 4, True, 1, (2, 3))])
    assert state.layer_labels() == ["layer2.1.relu  (4)", "add_3  (4)"]
    assert "layer2.1.relu:0" in state.status_line() and state.pane_views()["grid"].title.startswith("layer2.1.relu:")
    entry = AtlasLayer("relu_8", "Relu", [None, 4, 8, 8], 4, None, module_path="layer2.1.relu")
    write_site(tmp_path, "m.onnx", [entry], {}, None)
    index, page = (tmp_path / "index.html").read_text(), (tmp_path / entry.page).read_text()
    assert entry.page == "layers/relu_8.html" and ">layer2.1.relu</a>" in index
    assert "<h1>layer2.1.relu</h1>" in page and "<code>relu_8</code>" in page
