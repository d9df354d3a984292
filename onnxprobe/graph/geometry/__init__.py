"""Receptive fields and axis roles of every tensor, computed generically from the ONNX graph.

    from onnxprobe.graph.geometry import ReceptiveField, TensorGeometry, analyze_geometry

Pure ``onnx`` + ``numpy``: nothing is run. ``analyze_geometry`` walks the graph in topological order
from the image input and gives every tensor that depends on the image a ``TensorGeometry``: which
axis holds channels/units, which axes map onto the image's spatial axes, and, where it can be
proven, the receptive field (RF) of its units. Laid out like the backward rules (onnxprobe/autodiff):

    field.py      ReceptiveField (the box of unit i per spatial axis), TensorGeometry, the rules' state
    registry.py   ONE table of rules keyed by (domain, op_type), the register decorator, and Ctx, the
                  context a rule reads (as autodiff's registry holds its rules' context)
    rules/*.py    one small rule per op or kind of op (each file says what its rules do)
    driver.py     the topological walk, the shape pass, analyze_geometry

The op semantics the backward rules need too (Conv/pool windows with SAME padding, Resize coordinate
maps and nearest modes) have one home, onnxprobe/graph/opsem.py, used by both.

Conventions
-----------
* Per input spatial axis, unit index ``i`` of a tensor covers the half-open input-pixel interval
  ``[offset + i*stride, offset + i*stride + size)`` (see field.py).
* The box is always a *superset* of the input pixels the unit structurally depends on (the support
  of its gradient for some input); for chains of Conv/Pool/Pad/Slice/elementwise ops it is the exact
  bounding box (the classic RF arithmetic). Where a tight affine box does not exist (nearest/linear
  upsampling, ConvTranspose with stride > 1, DepthToSpace), it is the tightest box with the right
  fractional stride, which is looser than the support by less than one input stride.
* Anything that cannot be proven gives ``receptive_field=None`` (never a wrong RF). Tensors that do
  not depend on the image (initializers, Constant, Shape/Size results...) are not in the result.
* Axis roles are tracked as one label per tensor axis: batch ``N``, channels ``C``, spatial axis k of
  the input, or unknown; ``spatial_axes`` is reported only when every input spatial axis is present
  exactly once, and the RF is dropped as soon as one is lost.
* Default domain only: ops of other domains, control flow and ops without a rule are unknown.
"""

from .driver import analyze_geometry
from .field import ReceptiveField, TensorGeometry
from .registry import REGISTRY

__all__ = ["REGISTRY", "ReceptiveField", "TensorGeometry", "analyze_geometry"]
