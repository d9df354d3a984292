"""Module paths: the names a PyTorch user gave the layers, where the ONNX file records them, and the
one resolver of a layer name (an ONNX tensor name or a module path) that every command, the viewer
and the atlas use.

Where the module scopes come from:
- PyTorch's default (dynamo) exporter writes, on every node, the metadata key
  ``pkg.torch.onnx.name_scopes``: a Python list such as ``['', 'layer2', 'layer2.1', 'relu_8']``:
  the root module (''), then the qualified name of each module the node ran in, outermost first,
  then the FX node's own name (dropped here).
- The legacy exporter (``dynamo=False``) names nodes by scope: ``/layer2/layer2.1/relu_1/Relu``.
  Each segment is a module's qualified name from its last non-numeric atom (torch's
  ``_unqualified_variable_name``: ``downsample.0``, ``block.1.0``), so the qualified name is rebuilt
  by merging each segment with the tail of its parent's name; a second call of the same module gets
  ``_1`` (``relu_1``), stripped where the plain name is a sibling scope (unless the node reads a
  parameter named after the suffixed path: a module really called ``conv_1``).

Which tensor a module path names: a module's OUTPUT, the PyTorch forward hook's view. A tensor
produced inside module M (by a node whose scopes include M) is an output of M when a node outside M
reads it, or it is a graph output; M names the last of its outputs in topological order (a module
called twice, like a residual block's ``relu``, names its last call's output: ``layer2.1.relu`` is
``relu_8``, not ``relu_7``). A tensor can be the output of several nested modules (``relu_8`` is
``layer2.1.relu`` and ``layer2.1``): its ``module_path`` is the innermost one, the outer ones are
its ``module_aliases``, and every one of them resolves to it. Tensors that are no module's output
(a residual block's Add, the first call of a reused ReLU) keep only their ONNX name; their
``module_scope`` (the innermost module their node ran in) is shown for orientation, never resolved.
A module path equal to another layer's ONNX name is dropped: the ONNX name wins, so every path
shown resolves to its own tensor. With the BatchNorm folded into the Conv, the dynamo exporter
gives the Conv's output the BatchNorm's path (``layer2.1.bn2``), the legacy one the Conv's
(``layer2.1.conv2``).

Resolution (`LayerNames.resolve`): an ONNX tensor name first, then a module path (or alias), then a
dotted tail of module paths (``fc`` for ``heads.fc``, whole atoms only) when exactly one layer has
it; a tail several layers share is refused with the candidates. ONNX tensor names stay the keys of
everything onnxprobe writes.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import onnx

from onnxprobe.errors import UsageError

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_CALL_SUFFIX = re.compile(r"(.+)_(\d+)")

__all__ = ["SCOPES_KEY", "LayerNames", "ModuleNames", "module_names", "node_scopes"]


# ---- the scopes of each node ----------------------------------------------------------------------
def _dynamo_scopes(node: onnx.NodeProto) -> tuple[str, ...] | None:
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
            if not isinstance(scopes, (list, tuple)) or not all(isinstance(s, str) for s in scopes):
                return None
            # the root (''), the modules, then the FX node's own name; '@N' marks a repeated call
            return tuple(re.sub(r"@\d+$", "", s) for s in scopes[1:-1] if s)
    return None


def _legacy_segments(node: onnx.NodeProto) -> list[str] | None:
    name = node.name
    if not name.startswith("/") or name.count("/") < 2:
        return None
    segments = name.split("/")[1:-1]  # the last part is the op ("Relu", "Conv_1")
    return segments if all(segments) else None


def _merge(path: list[str], segment: str) -> list[str]:
    """The qualified name of a child scope whose legacy segment is `segment`, under `path`."""
    atoms = segment.split(".")
    for overlap in range(len(atoms) - 1, 0, -1):  # "downsample.0" under [..., "downsample"]
        if path[-overlap:] == atoms[:overlap]:
            return path + atoms[overlap:]
    return path + atoms


def _legacy_scopes(graph: onnx.GraphProto) -> dict[int, tuple[str, ...]]:
    parsed = {i: s for i, node in enumerate(graph.node) if (s := _legacy_segments(node))}
    siblings: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for segments in parsed.values():
        for i, s in enumerate(segments):
            siblings[tuple(segments[:i])].add(s)
    params = {init.name for init in graph.initializer}
    scopes = {}
    for index, segments in parsed.items():
        reads = [p for p in graph.node[index].input if p in params]
        path: list[str] = []
        chain = []
        for i, s in enumerate(segments):
            call = _CALL_SUFFIX.fullmatch(s)
            if call and call.group(1) in siblings[tuple(segments[:i])]:
                as_named = ".".join(_merge(path, s)) + "."
                if not any(p.startswith(as_named) for p in reads):  # a parameter says the name is real
                    s = call.group(1)
            path = _merge(path, s)
            chain.append(".".join(path))
        scopes[index] = tuple(chain)
    return scopes


def node_scopes(model: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """Tensor name -> the qualified names of the modules its producing node ran in, outermost first
    (absent where the file records none)."""
    graph = model.graph
    legacy = None
    out: dict[str, tuple[str, ...]] = {}
    for index, node in enumerate(graph.node):
        chain = _dynamo_scopes(node)
        if chain is None:
            if legacy is None:
                legacy = _legacy_scopes(graph)
            chain = legacy.get(index)
        if chain:
            for name in node.output:
                if name:
                    out[name] = chain
    return out


# ---- which tensor each module path names ------------------------------------------------------------
@dataclass(frozen=True)
class ModuleNames:
    """The module paths of a model's layers (see the module docstring)."""

    path: dict[str, str]                   # tensor -> its innermost module path
    aliases: dict[str, tuple[str, ...]]    # tensor -> the outer modules it is also the output of
    scope: dict[str, str]                  # tensor -> the innermost module its node ran in


def module_names(model: onnx.ModelProto, tensors: Sequence[str]) -> ModuleNames:
    """The module paths of `tensors` (the probeable layers, in graph order)."""
    scopes = node_scopes(model)
    if not scopes:
        return ModuleNames({}, {}, {})
    graph_outputs = {o.name for o in model.graph.output}
    readers: dict[str, list[set[str]]] = defaultdict(list)  # tensor -> the module sets of its readers
    for node in model.graph.node:
        inside = set(scopes.get(next((o for o in node.output if o), ""), ()))
        for name in node.input:
            if name:
                readers[name].append(inside)
    names_of: dict[str, list[str]] = {}  # module -> the tensor it names (the last output wins)
    for tensor in tensors:
        for module in scopes.get(tensor, ()):
            if tensor in graph_outputs or any(module not in r for r in readers.get(tensor, ())):
                names_of[module] = tensor
    taken = set(tensors)
    by_tensor: dict[str, list[str]] = defaultdict(list)
    for module, tensor in names_of.items():
        if module not in taken or module == tensor:  # an ONNX name wins over another layer's path
            by_tensor[tensor].append(module)
    path, aliases = {}, {}
    for tensor, modules in by_tensor.items():
        modules.sort(key=lambda m: -scopes[tensor].index(m))  # innermost first
        path[tensor], aliases[tensor] = modules[0], tuple(modules[1:])
    scope = {t: scopes[t][-1] for t in tensors if scopes.get(t)}
    return ModuleNames(path, aliases, scope)


# ---- the one resolver ---------------------------------------------------------------------------------
class LayerNames:
    """Finds a layer by its ONNX tensor name or its module path; built over `layers` (LayerInfo)."""

    def __init__(self, layers: Iterable):
        self.layers = list(layers)
        self.by_name = {layer.name: layer for layer in self.layers}
        self.by_path = {}
        for layer in self.layers:
            for path in layer.module_paths:
                self.by_path.setdefault(path, layer)

    def resolve(self, name: str):
        found = self.by_name.get(name) or self.by_path.get(name)
        if found is not None:
            return found
        tail = "." + name
        matches = {}
        for path, layer in self.by_path.items():
            if path.endswith(tail):
                matches.setdefault(layer.name, (path, layer))
        if len(matches) == 1:
            return next(iter(matches.values()))[1]
        if matches:
            paths = [path for path, _ in matches.values()]
            shown = ", ".join(paths[:6]) + (f" and {len(paths) - 6} more" if len(paths) > 6 else "")
            raise UsageError(f"layer name '{name}' is ambiguous: {len(paths)} module paths end with it ({shown}); "
                             f"give the whole path")
        known = list(self.by_name) + list(self.by_path)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = (f"; did you mean {', '.join(repr(c) for c in close)}?" if close
                else f"; run 'onnxprobe layers' to list the {len(self.layers)} layers")
        raise UsageError(f"no layer named '{name}'{hint}")
