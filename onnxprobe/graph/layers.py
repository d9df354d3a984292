"""Probeable layers: float intermediate tensors with a batch axis, with units and receptive fields."""

from __future__ import annotations

from dataclasses import dataclass

from onnxprobe.graph.facts import GraphFacts
from onnxprobe.graph.geometry import ReceptiveField, TensorGeometry, analyze_geometry
from onnxprobe.graph.names import module_names


@dataclass(frozen=True)
class LayerInfo:
    name: str
    op: str
    shape: tuple[int | None, ...]  # None is the batch axis
    channel_axis: int
    spatial_axes: tuple[int, ...]
    receptive_field: ReceptiveField | None
    differentiable: bool | None = None  # can a gradient flow from here back to the input?
    # True when the unit also depends on statistics of the whole image (squeeze-excitation gates,
    # instance norm): the receptive field is then the local support only.
    global_context: bool = False
    # the PyTorch module whose output this is, where the file records scopes (graph/names.py):
    # `module_path` the innermost, `module_aliases` the outer modules it is also the output of,
    # `module_scope` the innermost module its node ran in (shown, never resolved)
    module_path: str | None = None
    module_aliases: tuple[str, ...] = ()
    module_scope: str | None = None

    @property
    def module_paths(self) -> tuple[str, ...]:
        """Every module path that names this layer, innermost first."""
        return ((self.module_path,) if self.module_path else ()) + self.module_aliases

    @property
    def label(self) -> str:
        """The name to show a person: the module path where there is one, else the ONNX name."""
        return self.module_path or self.name

    @property
    def units(self) -> int:
        return int(self.shape[self.channel_axis])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(self.shape[a]) for a in self.spatial_axes)

    @property
    def is_spatial(self) -> bool:
        return bool(self.spatial_axes)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "module_path": self.module_path,
            "module_aliases": list(self.module_aliases),
            "module_scope": self.module_scope,
            "op": self.op,
            "shape": list(self.shape),
            "units": self.units,
            "channel_axis": self.channel_axis,
            "receptive_field": self.receptive_field.to_json() if self.receptive_field else None,
            "differentiable": self.differentiable,
            "global_context": self.global_context,
        }


def probeable_layers(facts: GraphFacts, input_name: str, layout: str,
                     differentiable: set[str] | None = None) -> list[LayerInfo]:
    """The layers of a loaded model (`GraphFacts.of_loaded`: its `infos` say which tensors qualify)."""
    model, infos = facts.model, facts.infos
    strict = analyze_geometry(model, input_name, layout=layout, facts=facts)
    # the approximate pass only matters where the strict one left a spatial tensor without a field
    gaps = any(g.spatial_axes and g.receptive_field is None for g in strict.values())
    local = analyze_geometry(model, input_name, layout=layout, facts=facts, approximate=True) if gaps else {}
    names = [name for node in model.graph.node for name in node.output
             if name and (info := infos.get(name)) is not None and info.is_float and info.has_batch_axis
             and len(info.shape) >= 2]
    names = list(dict.fromkeys(names))
    modules = module_names(model, names)
    layers = []
    for name in names:
        info = infos[name]
        geo = strict.get(name) or TensorGeometry(None, (), None)
        approx = local.get(name)
        global_context = geo.receptive_field is None and approx is not None and approx.receptive_field is not None
        if global_context:
            geo = approx
        channel_axis = geo.channel_axis if geo.channel_axis is not None else 1
        spatial = tuple(a for a in geo.spatial_axes if a != channel_axis and a < len(info.shape))
        layers.append(LayerInfo(
            name=name, op=info.op, shape=info.shape, channel_axis=channel_axis, spatial_axes=spatial,
            receptive_field=geo.receptive_field if spatial else None,
            differentiable=None if differentiable is None else name in differentiable,
            global_context=global_context and bool(spatial),
            module_path=modules.path.get(name), module_aliases=modules.aliases.get(name, ()),
            module_scope=modules.scope.get(name),
        ))
    return layers

