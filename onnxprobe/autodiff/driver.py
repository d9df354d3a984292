"""The reverse walk: seeds -> rules in reverse topological order -> gradients of `wrt`.

The driver, not the rules, decides what lies on the path, sums the gradients of tensors used
more than once, reports every unsupported op on the path at once, and prunes the result to what
the requested outputs need (forward nodes included).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import onnx
from onnx import helper

from ..errors import ModelError, UnsupportedOpsError, UsageError
from ..graph.facts import GraphFacts
from ..graph.loading import at_working_opset, finalize_model
from . import rules as _rules  # noqa: F401  (fills the registry)
from .registry import MODES, BackMode, Ctx, lookup
from .tape import Tape

SEED_PREFIX = "onnxprobe.seed:"
GRAD_PREFIX = "onnxprobe.grad:"


def seed_name(target: str) -> str:
    """Name of the graph input that carries d(objective)/d(target)."""
    return SEED_PREFIX + target


def grad_name(wrt: str) -> str:
    """Name of the graph output that carries d(objective)/d(wrt)."""
    return GRAD_PREFIX + wrt


# ---- graph facts --------------------------------------------------------------------------------

def _initializer_names(graph: onnx.GraphProto) -> set[str]:
    return {i.name for i in graph.initializer}


def _real_inputs(graph: onnx.GraphProto) -> list[str]:
    inits = _initializer_names(graph)
    return [i.name for i in graph.input if i.name not in inits]


def _default_wrt(graph: onnx.GraphProto) -> list[str]:
    inputs = _real_inputs(graph)
    if len(inputs) != 1:
        raise UsageError(f"the model has {len(inputs)} inputs ({', '.join(inputs)}): say which to differentiate (wrt)")
    return inputs


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    used: set[str] = set()
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            for n in g.node:
                used.update(i for i in n.input if i)
                used |= _subgraph_inputs(n)
    return used


def _node_inputs(node: onnx.NodeProto) -> set[str]:
    return {i for i in node.input if i} | _subgraph_inputs(node)


def _reach(graph: onnx.GraphProto, wrt: Iterable[str], strict: bool) -> set[str]:
    """Tensors that depend on `wrt`.

    strict: only through registered rules' differentiable inputs (where a gradient really flows).
    loose: through every op except the inputs that rules declare non-differentiable (used to find
    unsupported ops: an op without a rule, or a constant-assumed input such as Conv weights).
    """
    reach = set(wrt)
    for node in graph.node:
        rule = lookup(node.domain, node.op_type)
        if rule is None:
            hit = not strict and bool(_node_inputs(node) & reach)
        elif not rule.connects(node):
            hit = False
        else:
            hit = any(
                name in reach and (rule.is_diff(i) if strict else not rule.is_nodiff(i))
                for i, name in enumerate(node.input)
            )
        if hit:
            reach.update(o for o in node.output if o)
    return reach


def _ancestors(graph: onnx.GraphProto, targets: Iterable[str]) -> set[str]:
    anc = set(targets)
    for node in reversed(graph.node):
        if any(o in anc for o in node.output):
            anc |= _node_inputs(node)
    return anc


def differentiable_tensors(model: onnx.ModelProto, wrt: str | Sequence[str] | None = None) -> set[str]:
    """Tensors from which a gradient can flow back to `wrt` through registered rules (wrt included)."""
    graph = model.graph
    wrt_list = _default_wrt(graph) if wrt is None else ([wrt] if isinstance(wrt, str) else list(wrt))
    return _reach(graph, wrt_list, strict=True)


def unsupported_ops(model: onnx.ModelProto, targets: Sequence[str], wrt: Sequence[str]) -> list[tuple[str, str]]:
    """Every (op_type, node name) on the path from `wrt` to `targets` that has no usable rule."""
    graph = model.graph
    loose = _reach(graph, wrt, strict=False)
    anc = _ancestors(graph, targets)
    bad = []
    for node in graph.node:
        if not any(o in anc for o in node.output):
            continue
        rule = lookup(node.domain, node.op_type)
        label = (node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}",
                 node.name or node.output[0])
        if rule is None:
            if _node_inputs(node) & loose:
                bad.append(label)
        elif rule.connects(node) and any(
            name in loose and not rule.is_diff(i) and not rule.is_nodiff(i) for i, name in enumerate(node.input)
        ):
            bad.append(label)  # the path runs through an input the rule treats as constant
    return bad


# ---- building -----------------------------------------------------------------------------------

def _value_info(name: str, info: GraphFacts) -> onnx.ValueInfoProto:
    elem = info.elem.get(name, onnx.TensorProto.FLOAT)
    dims = info.shape(name)
    if dims is None:  # ONNX requires a shape (a rank) on graph inputs and outputs
        raise ModelError(f"the rank of tensor '{name}' is unknown (run shape inference or fix the input shape)")
    # rank only: static dims from shape inference can disagree with the runtime (ceil-mode pools)
    shape = ["N" if i == 0 else f"{name}_d{i}" for i in range(len(dims))]
    return helper.make_tensor_value_info(name, elem, shape)


def _prune(nodes: list[onnx.NodeProto], outputs: Iterable[str]) -> list[onnx.NodeProto]:
    needed = set(outputs)
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed |= _node_inputs(node)
    keep.reverse()
    return keep


def build_gradient_model(
    model: onnx.ModelProto,
    targets: Sequence[str],
    wrt: str | Sequence[str] | None = None,
    mode: str = BackMode.GRADIENT,
    extra_outputs: Sequence[str] = (),
    facts: GraphFacts | None = None,
) -> onnx.ModelProto:
    """One model computing the forward pass and d(sum_t sum(seed_t * t))/d(wrt).

    See docs/architecture.md "The gradient-graph contract". `facts`: the GraphFacts of `model`, or
    of the model it extends by added nodes (a loaded model's: no shape inference here but for the
    added nodes); without them one inference runs. Raises UnsupportedOpsError listing every op on
    the path without a backward rule, UsageError for unknown names or modes.
    """
    if mode not in MODES:
        raise UsageError(f"unknown gradient mode '{mode}' (choose from {', '.join(MODES)})")
    mode = BackMode(mode)
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise UsageError("no target tensors given for the gradient")
    upgraded = at_working_opset(model)
    facts = GraphFacts(upgraded) if facts is None or upgraded is not model else facts.extended(model)
    model = upgraded
    graph = model.graph
    wrt_list = _default_wrt(graph) if wrt is None else ([wrt] if isinstance(wrt, str) else list(wrt))
    known = facts.names()
    for kind, names in (("target", targets), ("wrt", wrt_list), ("extra output", list(extra_outputs))):
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"unknown {kind} tensor(s): {', '.join(missing)}")
    bad_wrt = [w for w in wrt_list if facts.is_const(w)]
    if bad_wrt:
        raise UsageError(f"cannot differentiate with respect to constant(s): {', '.join(bad_wrt)}")

    bad = unsupported_ops(model, targets, wrt_list)
    if bad:
        raise UnsupportedOpsError(bad)

    tape = Tape(facts, taken={seed_name(t) for t in targets} | {grad_name(w) for w in wrt_list})
    info, opset = tape.info, tape.opset
    strict = _reach(graph, wrt_list, strict=True)
    anc = _ancestors(graph, targets)

    contribs: dict[str, list[str]] = defaultdict(list)
    for t in targets:
        contribs[t].append(seed_name(t))
        info.elem.setdefault(seed_name(t), info.elem.get(t, onnx.TensorProto.FLOAT))
        if info.shape(t) is not None:
            info.dims[seed_name(t)] = [None] + list(info.shape(t)[1:]) if info.shape(t) else []
    totals: dict[str, str | None] = {}

    def total(name: str) -> str | None:
        if name not in totals:
            parts = contribs.get(name, [])
            if not parts:
                totals[name] = None
            elif len(parts) == 1:
                totals[name] = parts[0]
            else:
                totals[name] = tape.op("Sum", *parts)
                if info.shape(name) is not None:
                    tape.set_shape(totals[name], info.shape(name))
        return totals[name]

    for node in reversed(graph.node):
        if not any(o in anc for o in node.output):
            continue
        rule = lookup(node.domain, node.op_type)
        if rule is None or not rule.connects(node):
            continue
        needs = [bool(name) and name in strict and rule.is_diff(i) for i, name in enumerate(node.input)]
        if not any(needs):
            continue
        grads = [total(o) if o else None for o in node.output]
        if all(g is None for g in grads):
            continue
        for g, o in zip(grads, node.output):  # output gradients have the outputs' static shapes
            if g is not None and info.shape(o) is not None and info.shape(g) is None:
                tape.set_shape(g, info.shape(o), info.elem.get(o))
        in_grads = rule.fn(Ctx(node, grads, needs, tape, mode, opset))
        for i, gname in enumerate(in_grads):
            if gname is not None and i < len(needs) and needs[i]:
                contribs[node.input[i]].append(gname)

    outputs: list[onnx.ValueInfoProto] = []
    out_names: list[str] = []
    for t in targets:
        if t not in out_names:
            outputs.append(_value_info(t, info))
            out_names.append(t)
    for w in wrt_list:
        g = total(w)
        if g is None:
            g = tape.zeros_like(w)
        gn = grad_name(w)
        tape.emit("Identity", [g], [gn])
        info.elem[gn] = info.elem.get(w, onnx.TensorProto.FLOAT)
        info.dims[gn] = info.shape(w)
        outputs.append(_value_info(gn, info))
        out_names.append(gn)
    for e in extra_outputs:
        if e not in out_names:
            outputs.append(_value_info(e, info))
            out_names.append(e)

    nodes = _prune(list(graph.node) + tape.nodes, out_names)
    used = set().union(*(_node_inputs(n) for n in nodes)) | set(out_names)
    inits = [i for i in list(graph.initializer) + tape.initializers if i.name in used]
    init_names = _initializer_names(graph)
    inputs = [i for i in graph.input if i.name not in init_names or i.name in used]
    for t in targets:
        vi = _value_info(t, info)
        vi.name = seed_name(t)
        inputs.append(vi)
    produced = {o for n in nodes for o in n.output}
    value_info = [v for v in graph.value_info if v.name in produced and v.name not in out_names]

    new_graph = helper.make_graph(nodes, (graph.name or "graph") + "_grad", inputs, outputs, inits,
                                  value_info=value_info)
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), producer_name="onnxprobe.autodiff")
    for f in model.functions:
        out.functions.append(f)
    return finalize_model(out)
