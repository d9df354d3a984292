"""CUDA readiness on paper: every (op, domain, opset, element type) that onnxprobe's gradient graphs
and optimisation step graph put in front of ONNX Runtime has a CUDAExecutionProvider kernel.

An op without one does not fail: ONNX Runtime silently places it on the CPU and copies its inputs
and outputs across the bus on every run. The kernel table is tests/fixtures/ort_cuda_kernels.txt
(ONNX Runtime's docs/OperatorKernels.md, CUDA section; its header names the source version). A
node passes when a registration's opset range holds the version of the op's schema in force at the
model's opset, and every input and output's element type is in the type list of its constraint.
Types come from ONNX shape inference; a tensor without an inferred type fails the test (it cannot
be checked). No GPU is needed: this checks the graphs, not a device.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, defs, helper

from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name
from onnxprobe.graph.facts import GraphFacts

TABLE = Path(__file__).resolve().parents[1] / "fixtures" / "ort_cuda_kernels.txt"
ROOT = Path(__file__).resolve().parents[2]

_SHORT = {
    TensorProto.FLOAT16: "f16", TensorProto.FLOAT: "f32", TensorProto.DOUBLE: "f64", TensorProto.BFLOAT16: "bf16",
    TensorProto.INT8: "i8", TensorProto.INT16: "i16", TensorProto.INT32: "i32", TensorProto.INT64: "i64",
    TensorProto.UINT8: "u8", TensorProto.UINT16: "u16", TensorProto.UINT32: "u32", TensorProto.UINT64: "u64",
    TensorProto.BOOL: "bool", TensorProto.STRING: "str",
}


def load_table(path: Path = TABLE) -> dict[str, list[tuple[int, int, dict[str, set[str]]]]]:
    """op -> [(first opset, last opset, {constraint: types})] for the ai.onnx domain."""
    macros: dict[str, str] = {}
    table: dict[str, list] = {}

    def expand(text: str) -> str:
        return re.sub(r"@(\w+)", lambda m: expand(macros[m.group(1)]), text)

    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            name, _, value = line[1:].partition("=")
            macros[name.strip()] = value.strip()
            continue
        op, versions, constraints = line.split()
        if versions.endswith("+"):
            lo, hi = int(versions[:-1]), 10**9
        elif "-" in versions:
            lo, hi = (int(v) for v in versions.split("-"))
        else:
            lo = hi = int(versions)
        types = {}
        for part in constraints.split(";"):
            name, _, listed = part.partition("=")
            types[name] = set(expand(listed).split(","))
        table.setdefault(op, []).append((lo, hi, types))
    return table


def missing_kernels(model: onnx.ModelProto, table) -> set[str]:
    """One line per (op, schema version, constraint, type) without a CUDA kernel."""
    facts = GraphFacts(model)  # element types from shape inference, the opset
    elem, opset = facts.elem, facts.opset
    bad: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue  # ONNX Runtime turns Constant nodes into initializers when it loads a model
        if node.domain not in ("", "ai.onnx"):
            bad.add(f"{node.domain}::{node.op_type}: not a default-domain op")
            continue
        since = defs.get_schema(node.op_type, opset).since_version
        entry = next(((lo, hi, t) for lo, hi, t in table.get(node.op_type, []) if lo <= since <= hi), None)
        if entry is None:
            bad.add(f"{node.op_type}-{since}: no CUDA kernel for this opset")
            continue
        schema = defs.get_schema(node.op_type, opset)
        for formals, names in ((schema.inputs, node.input), (schema.outputs, node.output)):
            for i, name in enumerate(names):
                if not name:
                    continue
                formal = formals[min(i, len(formals) - 1)]  # variadic: the last formal repeats
                constraint = formal.type_str
                if constraint.startswith("tensor(") or constraint.startswith("seq("):
                    continue  # a fixed type, not a constraint: the schema itself pins it
                if name not in elem:
                    bad.add(f"{node.op_type}-{since}: type of '{name}' unknown (cannot check)")
                    continue
                short = _SHORT.get(elem[name], str(elem[name]))
                allowed = entry[2].get(constraint)
                if allowed is None:
                    bad.add(f"{node.op_type}-{since}: constraint {constraint} not registered on CUDA")
                elif short not in allowed:
                    bad.add(f"{node.op_type}-{since}: {constraint}={short} has no CUDA kernel")
    return bad


# ---- the table itself --------------------------------------------------------------------------

def test_table_parses_and_knows_what_it_should():
    """The parser reads the table, and spot checks against the doc (a wrong parser or a truncated
    transcription would make every later check meaningless)."""
    table = load_table()
    assert len(table) > 140
    relu = [t for lo, hi, t in table["Relu"] if lo <= 14 <= hi]
    assert relu and relu[0]["T"] == {"bf16", "f64", "f32", "f16"}
    pad18 = [t for lo, hi, t in table["Pad"] if lo <= 18 <= hi][0]
    assert "i64" not in pad18["T"] and "f32" in pad18["T"]
    assert "Col2Im" not in table and "MaxUnpool" not in table  # CPU-only ops
    assert "source: microsoft/onnxruntime docs/OperatorKernels.md" in TABLE.read_text()


def test_the_check_finds_a_cpu_only_op():
    """The check can fail: Col2Im has no CUDA kernel, Pad on int64 neither."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 9, 4])
    p = helper.make_tensor_value_info("p", TensorProto.INT64, [3])
    nodes = [helper.make_node("Col2Im", ["x", "shape", "block"], ["y"]),
             helper.make_node("Pad", ["p", "pads"], ["q"])]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [4, 4]),
             helper.make_tensor("block", TensorProto.INT64, [2], [3, 3]),
             helper.make_tensor("pads", TensorProto.INT64, [2], [1, 1])]
    g = helper.make_graph(nodes, "g", [x, p], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                                               helper.make_tensor_value_info("q", TensorProto.INT64, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    bad = missing_kernels(m, load_table())
    assert any(b.startswith("Col2Im-18") for b in bad), bad
    assert any(b.startswith("Pad-18: T=i64") for b in bad), bad


# ---- onnxprobe's graphs ------------------------------------------------------------------------

def _network_models():
    import torch
    import torchvision  # noqa: F401  (a test dependency: missing means fail, never skip)
    from tests.fixtures_torch import export_module
    from tests.networks.test_torchvision_gradients import ARCHS, build

    old = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # as the network tests export them
    try:
        for arch in ARCHS:
            module, x = build(arch)
            path = export_module(module, x, name=f"grad-{arch.name}", keep_batchnorm=arch.keep_batchnorm)
            yield arch.name, onnx.load(str(path))
    finally:
        torch.backends.mha.set_fastpath_enabled(old)


@pytest.mark.networks
def test_gradient_graphs_of_the_test_networks_have_cuda_kernels():
    """Every architecture of tests/networks, gradient/deconv/guided graphs of its logits. The
    exports are shared with tests/networks (same cache keys): cold, this test pays for them."""
    table = load_table()
    problems: dict[str, set[str]] = {}
    count = 0
    for name, model in _network_models():
        out = model.graph.output[0].name
        for mode in ("gradient", "deconv", "guided"):
            gm = build_gradient_model(model, [out], mode=mode)
            count += 1
            for line in missing_kernels(gm, table):
                problems.setdefault(line, set()).add(f"{name}/{mode}")
    assert count >= 3 * 10
    assert not problems, "ops that would fall back to the CPU:\n" + "\n".join(
        f"  {line}  ({', '.join(sorted(where)[:4])}{' ...' if len(where) > 4 else ''})" for line, where in sorted(problems.items()))


def test_optimization_step_graph_has_cuda_kernels():
    """The bundled digits CNN's step graph (NCHW; the NHWC branch only adds two float Transposes)."""
    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize.stepgraph import build_step_model

    from onnxprobe.objectives import neuron

    model = ProbeModel.load(ROOT / "models" / "digits" / "digits-cnn.onnx", device="cpu")
    target = model.output_names[0]
    gm = build_gradient_model(model.proto, [target], wrt=[model.input_name])
    c = model.spec.channels
    ones = np.ones((1, c, 1, 1), np.float32)
    step = build_step_model(gm, model.input_name, grad_name(model.input_name), neuron(model, target, 0),
                            {target: seed_name(target)}, ones, -ones, ones, False)
    bad = missing_kernels(step, load_table())
    assert not bad, "ops of the step graph that would fall back to the CPU:\n  " + "\n  ".join(sorted(bad))
