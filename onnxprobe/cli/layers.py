"""`onnxprobe layers MODEL`: every probeable tensor with its op, shape, units and receptive field."""

from __future__ import annotations

from onnxprobe.cli.common import add_model_args, load_model_from_args
from onnxprobe.errors import printable


SUMMARY = "list the probeable layers of a model"  # the line in 'onnxprobe --help'
DESCRIPTION = """Every probeable tensor of MODEL: op, shape, units, receptive field (size / stride / offset) and
whether it can be differentiated back to the input. Where the file records PyTorch module scopes
(torch.onnx.export, either exporter), each layer that is a module's output also shows its module
path (layer2.1.relu; "=" lists the outer modules it is also the output of, "in" the module an
unnamed tensor is computed in). --layer takes the ONNX name or the module path everywhere; files
are keyed by the ONNX name."""
EXAMPLES = """examples:
  onnxprobe layers models/imagenet/mobilenet_v2.onnx
  onnxprobe layers model.onnx --input-shape 1,3,224,224 --json > layers.json   # dynamic height/width
"""


def register(sub) -> None:
    parser = sub.add_parser("layers", help=SUMMARY)
    add_model_args(parser, device=False)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    model = load_model_from_args(args, device="cpu")
    layers = model.layers
    if args.json:
        print(layers.json())
        return 0
    for line in model.summary():
        print(line)
    if not layers:
        return 0
    named = sum(1 for layer in layers if layer.module_path)
    scoped = any(layer.module_scope for layer in layers)
    if scoped:
        print(f"module paths for {named} of {len(layers)} layers (from the file's module scopes)")
    rows = [("name", *(("module",) if scoped else ()), "op", "shape", "units", "receptive field (size / stride / offset)", "grad")]
    for layer in layers:
        rf = layer.receptive_field
        rf_text = "-" if rf is None else " / ".join("x".join(_num(v) for v in part) for part in (rf.size, rf.stride, rf.offset))
        grad = {True: "yes", False: "no", None: "?"}[layer.differentiable]
        shape = "x".join("N" if d is None else str(d) for d in layer.shape)
        module = (_module_text(layer),) if scoped else ()
        rows.append((printable(layer.name), *module, printable(layer.op), shape, str(layer.units), rf_text, grad))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    blocked = [layer.name for layer in layers if layer.differentiable is False]
    if blocked:
        print(f"{len(blocked)} layer(s) cannot be differentiated back to the input (an op without a backward rule lies between)")
    return 0


def _module_text(layer) -> str:
    if layer.module_path:
        return printable(layer.module_path + (f" = {', '.join(layer.module_aliases)}" if layer.module_aliases else ""))
    return printable(f"(in {layer.module_scope})") if layer.module_scope else "-"


def _num(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
