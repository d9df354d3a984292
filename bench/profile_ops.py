#!/usr/bin/env python
"""Where the time goes, per node type: ONNX Runtime's profiler on the plain forward, the gradient
step and the all-layers exposed forward of one model, side by side.

    python bench/profile_ops.py                        # ResNet-18 (bench_gradient's), batch 8, 224 px
    python bench/profile_ops.py --batch 1 --runs 10 --top 25
    python bench/profile_ops.py --arch mobilenet_v2    # the bundled network's architecture
    python bench/profile_ops.py --save-optimized DIR   # ORT's optimized graphs, to check fusions
    python bench/profile_ops.py --nodes 40 --threads 1 # also the 40 costliest nodes of the gradient

The three cases run one after another (a profiler per session), so under load compare the SHARES
within a column (a busy machine stretches every kernel of a run alike), not columns against each
other; "exposed" exposes every node output. bench_gradient / bench_expose give the interleaved
ratios.
Kernel times are summed over --runs runs after one warm-up run, then divided by --runs.
--nodes lists single nodes of the gradient graph with their output shapes: a backward node next to
its forward twin (a stride-1 adjoint Conv vs the forward Conv of the same shape, ORT's Reorder
nodes around a mask) shows what costs more than its share. With --threads 1 the kernel times are
CPU work, which a loaded machine disturbs least.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def profile(model_bytes: bytes, feeds: dict, runs: int, threads: int, optimized: Path | None = None,
            per_node: dict | None = None) -> dict:
    """{op_type: (ms per run, node count)} from ORT's profiler, plus '_wall' (ms per run).
    per_node, when given, is filled with {node name: (ms per run, op type, output shapes)}."""
    import time

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    with tempfile.TemporaryDirectory() as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "prof")
        sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        start = time.perf_counter()
        for _ in range(runs):
            sess.run(None, feeds)
        wall = (time.perf_counter() - start) / runs
        trace = json.loads(Path(sess.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    nodes: dict[str, set] = defaultdict(set)
    for ev in trace:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        op = ev.get("args", {}).get("op_name", "?")
        totals[op] += ev["dur"] / 1000.0
        nodes[op].add(ev["name"])
        if per_node is not None:
            name = ev["name"][: -len("_kernel_time")]
            shapes = [list(d.values())[0] for d in ev.get("args", {}).get("output_type_shape", [])]
            ms, _, _ = per_node.get(name, (0.0, op, shapes))
            per_node[name] = (ms + ev["dur"] / 1000.0 / (runs + 1), op, shapes)
    # the warm-up run is in the trace too: runs + 1 runs in all
    out = {op: (ms / (runs + 1), len(nodes[op])) for op, ms in totals.items()}
    out["_wall"] = (wall * 1000.0, 0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--arch", default="resnet18", help="torchvision architecture (bench_gradient's)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--mode", default="gradient")
    ap.add_argument("--save-optimized", type=Path, help="write ORT's optimized graphs (forward, gradient) here")
    ap.add_argument("--nodes", type=int, default=0, help="also list this many costliest nodes of the gradient graph")
    args = ap.parse_args()

    import onnx

    from bench_gradient import _input, _seed, export_model
    from onnxprobe.autodiff import build_gradient_model, seed_name
    from onnxprobe.graph.expose import expose_tensors

    path = export_model(args)
    model = onnx.load(str(path))
    x = _input(args)
    grad = build_gradient_model(model, targets=["logits"], mode=args.mode)
    names = [o for n in model.graph.node for o in n.output if o]
    exposed = expose_tensors(model, names)
    cases = {
        "forward": (model, {"input": x}),
        "gradient": (grad, {"input": x, seed_name("logits"): _seed(args.batch)}),
        "exposed": (exposed, {"input": x}),
    }
    res = {}
    per_node: dict = {}
    for label, (m, feeds) in cases.items():
        opt = None
        if args.save_optimized:
            args.save_optimized.mkdir(parents=True, exist_ok=True)
            opt = args.save_optimized / f"{label}.onnx"
        res[label] = profile(m.SerializeToString(), feeds, args.runs, args.threads, opt,
                             per_node if label == "gradient" and args.nodes else None)
    kern = {k: sum(v[0] for op, v in r.items() if op != "_wall") for k, r in res.items()}
    ops = sorted({op for r in res.values() for op in r if op != "_wall"},
                 key=lambda op: -max(r.get(op, (0, 0))[0] for r in res.values()))
    print(f"batch {args.batch}, {args.size} px, {args.threads} thread(s), {args.runs} profiled runs; "
          "ms per run (node count)")
    print(f"{'op type':<28}" + "".join(f"{k:>22}" for k in res))
    for op in ops[: args.top]:
        cells = "".join(f"{r[op][0]:9.2f} {100 * r[op][0] / kern[k]:3.0f}% ({r[op][1]:3d})" if op in r else f"{'-':>22}"
                        for k, r in res.items())
        print(f"{op:<28}{cells}")
    print(f"{'sum of kernels':<28}" + "".join(f"{kern[k]:15.1f}       " for k in res))
    print(f"{'wall':<28}" + "".join(f"{r['_wall'][0]:15.1f}       " for r in res.values()))
    print(f"kernel-sum ratios: gradient / forward = {kern['gradient'] / kern['forward']:.2f}, "
          f"exposed / forward = {kern['exposed'] / kern['forward']:.2f}")
    if args.nodes:
        print(f"\nthe {args.nodes} costliest nodes of the gradient graph (ms per run; onnxprobe.bw/ = backward, "
              "Reorder* = ORT's layout changes, others = the forward half)")
        for name, (ms, op, shapes) in sorted(per_node.items(), key=lambda kv: -kv[1][0])[: args.nodes]:
            print(f"{ms:8.2f}  {op:<16} {name[:60]:<60} -> {' '.join('x'.join(map(str, s)) for s in shapes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
