#!/usr/bin/env python
"""Export a PyTorch / torchvision image model to ONNX for onnxprobe.

    python tools/export_torch.py torchvision:resnet18 --weights none --out resnet18.onnx
    python tools/export_torch.py torchvision:resnet18 --weights default --out resnet18.onnx
    python tools/export_torch.py mypkg.models:build_net --input-size 128 128 --out net.onnx
    python tools/export_torch.py path/to/file.py:build_net --state-dict net.pt --out net.onnx

What it writes (``<stem>`` is the output name without ``.onnx``):

* ``<stem>.onnx``: opset 18, batch axis dynamic (dim_param ``"N"``), IR version <= 10, input
  ``image`` (NCHW float32), output ``logits``; intermediate tensors renamed after the torch
  module that produced them (``layer1.0.conv1``, ``layer1.0/Add``, ``avgpool``, ...), since
  onnxprobe addresses layers by ONNX tensor name. Preprocessing is also stored in the model's
  ``metadata_props`` (keys ``onnxprobe.<key>``, values JSON).
* ``<stem>.onnxprobe.json``: the preprocessing sidecar (see tools/README.md).
* ``<stem>.labels.txt``: one class label per line, when labels are known.

``--weights none`` (random init) never touches the network. ``--weights default`` (or a weights
enum name such as ``IMAGENET1K_V1``) needs the torchvision checkpoint: either network access or
the file already cached under ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``).

This is a developer tool: it imports torch. The onnxprobe runtime never does.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx

OPSET = 18
MAX_IR_VERSION = 10          # ONNX Runtime 1.31 reads IR <= 13; stay well below
SIDECAR_SUFFIX = ".onnxprobe.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NAME = "image"
BATCH_DIM = "N"


# --------------------------------------------------------------------------------------------
# sidecar + metadata
# --------------------------------------------------------------------------------------------
def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``foo/bar.onnx`` -> ``foo/bar.onnxprobe.json``."""
    p = Path(model_path)
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return p.with_name(stem + SIDECAR_SUFFIX)


def labels_path(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return p.with_name(stem + ".labels.txt")


def make_spec(input_size: Sequence[int], *, channels: int = 3, layout: str = "NCHW",
              channel_order: str = "RGB", value_range: Sequence[float] = (0.0, 1.0),
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              resize: str = "crop", invert: bool = False) -> dict[str, Any]:
    """Build a preprocessing spec dict in the sidecar format (labels added by write_sidecar)."""
    if len(input_size) != 2:
        raise ValueError("input_size must be [H, W]")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError("layout must be NCHW or NHWC")
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    if channel_order not in ("RGB", "BGR"):
        raise ValueError("channel_order must be RGB or BGR")
    if resize not in ("crop", "stretch"):
        raise ValueError("resize must be crop or stretch")
    mean = [0.0] * channels if mean is None else [float(m) for m in mean]
    std = [1.0] * channels if std is None else [float(s) for s in std]
    if len(mean) == 1 and channels > 1:
        mean = mean * channels
    if len(std) == 1 and channels > 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std need {channels} values")
    spec = {
        "input_size": [int(input_size[0]), int(input_size[1])],
        "layout": layout,
        "channels": int(channels),
        "channel_order": channel_order,
        "value_range": [float(value_range[0]), float(value_range[1])],
        "mean": mean,
        "std": std,
        "resize": resize,
        "invert": bool(invert),
    }
    return spec


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_sidecar(model_path: str | os.PathLike, spec: dict[str, Any],
                  labels: Sequence[str] | None = None) -> Path:
    """Write ``<stem>.onnxprobe.json`` (and ``<stem>.labels.txt`` when labels are given)."""
    spec = dict(spec)
    if labels is not None:
        lp = labels_path(model_path)
        _atomic_write_bytes(lp, ("\n".join(str(l) for l in labels) + "\n").encode("utf-8"))
        spec["labels"] = lp.name
    sp = sidecar_path(model_path)
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items()) + "\n}\n"
    _atomic_write_bytes(sp, text.encode("utf-8"))
    return sp


def add_metadata(model: onnx.ModelProto, spec: dict[str, Any],
                 labels: Sequence[str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
    """Store the preprocessing spec in ``metadata_props`` as ``onnxprobe.<key>`` = JSON value.

    Labels go in inline as a JSON list (``onnxprobe.labels``). ``extra`` entries are written the
    same way (use dotted keys such as ``training.seed``)."""
    items = dict(spec)
    items.pop("labels", None)
    if labels is not None:
        items["labels"] = [str(l) for l in labels]
    for k, v in (extra or {}).items():
        items[k] = v
    keep = [p for p in model.metadata_props if not p.key.startswith("onnxprobe.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in items.items():
        p = model.metadata_props.add()
        p.key = "onnxprobe." + k
        p.value = json.dumps(v)


# --------------------------------------------------------------------------------------------
# graph tidying
# --------------------------------------------------------------------------------------------
def _has_subgraphs(graph: onnx.GraphProto) -> bool:
    for n in graph.node:
        for a in n.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                return True
    return False


def _module_path(node_name: str) -> tuple[str, str] | None:
    """'/layer1/layer1.0/conv1/Conv' -> ('layer1.0.conv1', 'Conv'); None if not a scoped name."""
    if not node_name.startswith("/"):
        return None
    parts = node_name.strip("/").split("/")
    if not parts or not parts[-1]:
        return None
    # The exporter's scope names are local: '/layer2/layer2.0/downsample/downsample.0/Conv'
    # (a Sequential child is named '<container>.<index>'). Rebuild the state_dict-style path.
    comps: list[str] = []
    for c in parts[:-1]:
        if comps and c.startswith(comps[-1] + "."):
            comps[-1] = c
        else:
            comps.append(c)
    return ".".join(comps), parts[-1]


def tidy_graph(model: onnx.ModelProto, rename: bool = True) -> onnx.ModelProto:
    """Clean up a torch (TorchScript exporter) ONNX graph in place and return it.

    * Identity nodes that merely alias an initializer (the exporter deduplicates equal
      constants this way) are removed and their consumers read the initializer directly.
    * Intermediate tensors get the name of the torch module that produced them: a leaf module
      with a single node gives its dotted path (``layer1.0.conv1``); other nodes get
      ``<module path>/<op>`` (``layer1.0/Add``). Graph inputs and outputs keep their names.
    * Anonymous initializers (``onnx::Conv_193``) become ``<consumer>.weight`` / ``.bias``.
    * value_info is recomputed with ONNX shape inference (dynamic batch stays ``N``).
    """
    g = model.graph
    init_names = {i.name for i in g.initializer}
    graph_outputs = {o.name for o in g.output}

    # 1. Identity(initializer) aliases
    alias: dict[str, str] = {}
    kept = []
    for n in g.node:
        if (n.op_type == "Identity" and n.domain in ("", "ai.onnx") and len(n.input) == 1
                and n.input[0] in init_names and n.output[0] not in graph_outputs):
            alias[n.output[0]] = alias.get(n.input[0], n.input[0])
        else:
            kept.append(n)
    if alias and not _has_subgraphs(g):
        for n in kept:
            for i, name in enumerate(n.input):
                if name in alias:
                    n.input[i] = alias[name]
        del g.node[:]
        g.node.extend(kept)

    if not rename or _has_subgraphs(g):
        return _reinfer(model)

    # 2. tensor names from module scopes
    scoped = {}
    for idx, n in enumerate(g.node):
        mp = _module_path(n.name)
        if mp is not None:
            scoped[idx] = mp
    count: dict[str, int] = {}
    for path, _ in scoped.values():
        count[path] = count.get(path, 0) + 1
    paths = set(count)

    def is_leaf(path: str) -> bool:
        if not path:
            return False
        pre = path + "."
        return not any(p.startswith(pre) for p in paths)

    used = set(init_names) | {i.name for i in g.input} | graph_outputs
    renames: dict[str, str] = {}

    def unique(name: str) -> str:
        if name not in used:
            used.add(name)
            return name
        k = 2
        while f"{name}_{k}" in used:
            k += 1
        used.add(f"{name}_{k}")
        return f"{name}_{k}"

    for idx, n in enumerate(g.node):
        if idx not in scoped:
            continue
        path, op = scoped[idx]
        if path and count[path] == 1 and is_leaf(path):
            base = path
        else:
            base = f"{path}/{op}" if path else op
        new_node_name = None
        for k, out in enumerate(n.output):
            if not out or out in graph_outputs:
                continue
            new = unique(base if k == 0 else f"{base}:{k}")
            renames[out] = new
            if new_node_name is None:
                new_node_name = new
        n.name = new_node_name or base

    # 3. anonymous initializers
    consumers: dict[str, tuple[onnx.NodeProto, int]] = {}
    for n in g.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, (n, i))
    suffix = {1: "weight", 2: "bias"}
    for init in g.initializer:
        if not init.name.startswith("onnx::") or init.name not in consumers:
            continue
        node, i = consumers[init.name]
        owner = node.output[0] if node.output else node.name
        owner = renames.get(owner, owner)
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and i in suffix:
            tail = suffix[i]
        else:
            tail = f"param{i}"
        renames[init.name] = unique(f"{owner}.{tail}")
        init.name = renames[init.name]

    for n in g.node:
        for i, name in enumerate(n.input):
            if name in renames:
                n.input[i] = renames[name]
        for i, name in enumerate(n.output):
            if name in renames:
                n.output[i] = renames[name]
    return _reinfer(model)


def _reinfer(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    model.graph.value_info.extend(inferred.graph.value_info)
    return model


def finalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Cap the IR version and check the model."""
    model.ir_version = min(int(model.ir_version), MAX_IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model(model: onnx.ModelProto, out_path: str | os.PathLike) -> Path:
    out = Path(out_path)
    _atomic_write_bytes(out, model.SerializeToString())
    return out


# --------------------------------------------------------------------------------------------
# torch export
# --------------------------------------------------------------------------------------------
def torch_to_onnx(module, input_shape: Sequence[int], output_names: Sequence[str] = ("logits",),
                  input_name: str = INPUT_NAME, rename: bool = True) -> onnx.ModelProto:
    """Export ``module`` (eval mode) at opset 18 with a dynamic batch axis; tidy the names."""
    import torch

    module = module.eval()
    dummy = torch.zeros(tuple(int(d) for d in input_shape), dtype=torch.float32)
    dummy.normal_(generator=torch.Generator().manual_seed(0))
    dyn = {input_name: {0: BATCH_DIM}}
    for o in output_names:
        dyn[o] = {0: BATCH_DIM}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(module, (dummy,), buf, input_names=[input_name],
                              output_names=list(output_names), opset_version=OPSET,
                              dynamic_axes=dyn, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    # the release, not the local build tag (+cpu, +cu130): the same export from either build is the same file
    model.producer_name = "onnxprobe-tools (torch " + torch.__version__.split("+")[0] + ")"
    tidy_graph(model, rename=rename)
    return model


def export_module(module, out_path: str | os.PathLike, *, input_size: Sequence[int] = (224, 224),
                  channels: int = 3, mean: Sequence[float] | None = IMAGENET_MEAN,
                  std: Sequence[float] | None = IMAGENET_STD, channel_order: str = "RGB",
                  value_range: Sequence[float] = (0.0, 1.0), resize: str = "crop",
                  invert: bool = False, labels: Sequence[str] | None = None,
                  output_name: str = "logits", extra_metadata: dict[str, Any] | None = None,
                  rename: bool = True) -> Path:
    """Export a torch module that maps (N, C, H, W) float images to outputs; write the sidecar."""
    spec = make_spec(input_size, channels=channels, layout="NCHW", channel_order=channel_order,
                     value_range=value_range, mean=mean, std=std, resize=resize, invert=invert)
    model = torch_to_onnx(module, (1, channels, *input_size), output_names=(output_name,),
                          rename=rename)
    add_metadata(model, spec, labels, extra_metadata)
    finalize(model)
    out = save_model(model, out_path)
    write_sidecar(out, spec, labels)
    return out


def _torchvision_weights(name: str, weights: str | None):
    """-> (weights enum member or None, default weights member or None)."""
    from torchvision import models as tvm

    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        enum = None
    default = getattr(enum, "DEFAULT", None) if enum is not None else None
    if weights is None or str(weights).lower() == "none":
        return None, default
    if enum is None:
        raise SystemExit(f"error: torchvision model {name!r} has no pretrained weights")
    if str(weights).lower() == "default":
        return default, default
    try:
        return enum[weights], default
    except KeyError:
        names = ", ".join(m.name for m in enum)
        raise SystemExit(f"error: unknown weights {weights!r} for {name}; choose none, default, {names}")


def _checkpoint_cached(w) -> bool:
    import torch

    url = getattr(w, "url", "")
    return bool(url) and (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).exists()


def export_torchvision(name: str, out_path: str | os.PathLike,
                       input_size: Sequence[int] | None = (224, 224),
                       weights: str | None = None, *,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                       labels: Sequence[str] | None = None, seed: int = 0) -> Path:
    """Export ``torchvision.models.<name>`` to ``out_path`` (+ sidecar, + labels).

    ``weights``: None / "none" = random init (seeded with ``seed``; no network ever),
    "default" or an enum member name = pretrained (needs network access or a cached
    checkpoint under ``$TORCH_HOME/hub/checkpoints``). ``input_size=None`` takes the crop size
    of the model's default weights transforms (224 for most, 299 for inception_v3).
    Mean/std default to the weights' transforms (ImageNet). Labels default to the ImageNet
    categories from the weights metadata (no download needed for that).
    Returns the path of the written .onnx file.
    """
    import torch
    from torchvision import models as tvm

    w, default = _torchvision_weights(name, weights)
    ref = w or default
    tf = None
    if ref is not None:
        try:
            tf = ref.transforms()
        except Exception:          # pragma: no cover - odd weights without transforms
            tf = None
    if input_size is None:
        crop = getattr(tf, "crop_size", None) if tf is not None else None
        input_size = (int(crop[0]), int(crop[0])) if crop else (224, 224)
    if mean is None:
        mean = list(getattr(tf, "mean", IMAGENET_MEAN)) if tf is not None else list(IMAGENET_MEAN)
    if std is None:
        std = list(getattr(tf, "std", IMAGENET_STD)) if tf is not None else list(IMAGENET_STD)
    if labels is None and ref is not None:
        labels = ref.meta.get("categories")

    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {}
    if w is not None and not _checkpoint_cached(w):
        print(f"note: downloading {w.url} (needs network access; cached under "
              f"{torch.hub.get_dir()}/checkpoints afterwards)", file=sys.stderr)
    if name in ("inception_v3", "googlenet") and w is None:
        kwargs["init_weights"] = True
    try:
        module = tvm.get_model(name, weights=w, **kwargs)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    except OSError as e:   # URLError is an OSError
        raise SystemExit(f"error: could not fetch weights for {name} ({e}); '--weights default' "
                         f"needs network access or a cached checkpoint in "
                         f"{torch.hub.get_dir()}/checkpoints; use '--weights none' for random init") from None
    if labels is not None:
        n_out = _num_outputs(module, input_size)
        if n_out is not None and n_out != len(labels):
            labels = None
    meta = {"source": f"torchvision:{name}", "weights": w.name if w is not None else "none"}
    return export_module(module, out_path, input_size=input_size, channels=3, mean=mean, std=std,
                         channel_order="RGB", value_range=(0.0, 1.0), resize="crop",
                         labels=labels, extra_metadata=meta)


def _num_outputs(module, input_size) -> int | None:
    last = None
    for m in module.modules():
        if hasattr(m, "out_features"):
            last = m.out_features
    return int(last) if last is not None else None


def load_factory(target: str) -> Callable[[], Any]:
    """``pkg.mod:factory`` or ``path/to/file.py:factory`` -> the callable."""
    if ":" not in target:
        raise SystemExit(f"error: expected MODULE:FACTORY or torchvision:NAME, got {target!r}")
    mod_name, attr = target.rsplit(":", 1)
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise SystemExit(f"error: no such file: {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        mod = importlib.import_module(mod_name)
    try:
        obj = getattr(mod, attr)
    except AttributeError:
        raise SystemExit(f"error: {mod_name} has no attribute {attr!r}") from None
    return obj


def _read_labels(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def _check_export(module, out: Path, input_size, channels) -> float:
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).standard_normal((2, channels, *input_size)).astype(np.float32)
    with torch.no_grad():
        ref = module.eval()(torch.from_numpy(x))
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float(np.max(np.abs(got - ref)))


def export_main(export: Callable[[str], Path], description: str, argv: Sequence[str] | None = None) -> int:
    """The command line of a script that exports one fixed network (`export(out_path)`): `--out PATH`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, help="output .onnx path")
    args = parser.parse_args(argv)
    print(export(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="torchvision:NAME, pkg.module:factory or file.py:factory")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--weights", default="none",
                    help="torchvision only: none (random init, default), default (pretrained; "
                         "needs network or cached weights) or a weights enum name")
    ap.add_argument("--state-dict", help="user factories: load this torch state dict file")
    ap.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    ap.add_argument("--channels", type=int, choices=(1, 3), default=3)
    ap.add_argument("--mean", nargs="+", type=float)
    ap.add_argument("--std", nargs="+", type=float)
    ap.add_argument("--channel-order", choices=("RGB", "BGR"), default="RGB")
    ap.add_argument("--value-range", nargs=2, type=float, default=(0.0, 1.0), metavar=("LO", "HI"))
    ap.add_argument("--resize", choices=("crop", "stretch"), default="crop")
    ap.add_argument("--invert", action="store_true", help="model expects inverted images")
    ap.add_argument("--labels", help="text file, one class label per line")
    ap.add_argument("--output-name", default="logits")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for random init")
    ap.add_argument("--no-check", action="store_true", help="skip the torch vs onnxruntime check")
    a = ap.parse_args(argv)

    labels = _read_labels(a.labels) if a.labels else None
    if a.model.startswith("torchvision:"):
        name = a.model.split(":", 1)[1]
        out = export_torchvision(name, a.out, tuple(a.input_size) if a.input_size else None,
                                 weights=a.weights, mean=a.mean, std=a.std, labels=labels,
                                 seed=a.seed)
        module = None
        if not a.no_check:
            import torch
            from torchvision import models as tvm
            w, _ = _torchvision_weights(name, a.weights)
            torch.manual_seed(a.seed)
            kw = {"init_weights": True} if name in ("inception_v3", "googlenet") and w is None else {}
            module = tvm.get_model(name, weights=w, **kw)
    else:
        import torch
        if a.weights.lower() != "none":
            raise SystemExit("error: --weights applies to torchvision models; load your own "
                             "weights in the factory or pass --state-dict")
        torch.manual_seed(a.seed)
        module = load_factory(a.model)()
        if a.state_dict:
            sd = torch.load(a.state_dict, map_location="cpu", weights_only=True)
            module.load_state_dict(sd)
        out = export_module(module, a.out, input_size=tuple(a.input_size or (224, 224)),
                            channels=a.channels,
                            mean=a.mean if a.mean else (IMAGENET_MEAN if a.channels == 3 else None),
                            std=a.std if a.std else (IMAGENET_STD if a.channels == 3 else None),
                            channel_order=a.channel_order, value_range=a.value_range,
                            resize=a.resize, invert=a.invert, labels=labels,
                            output_name=a.output_name, extra_metadata={"source": a.model})
    print(f"wrote {out} and {sidecar_path(out).name}")
    if module is not None:
        spec = json.loads(sidecar_path(out).read_text())
        diff = _check_export(module, out, spec["input_size"], spec["channels"])
        print(f"max |onnxruntime - torch| = {diff:.3g}")
        if diff > 1e-3:
            print("warning: large difference between torch and onnxruntime outputs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
