"""Soak: the viewer window for a long time on a looping video with the back pane on, while a script
switches layers, units and modes; resident memory and frame time over time.

The window is the real one (`viewer/qt`), on the display it finds (run it under Xvfb:
`xvfb-run -a python bench/bench_soak.py`), else Qt's offscreen platform. The video (320x240 MJPG,
30 fps, 60 frames) loops, paced at its frame rate, as `view --video` plays it. Every
`--action-seconds` the script types one key of the viewer's own table (next / previous layer, unit
moves, back mode and filter, quick back loop, diffs, zoom, boosts, resize, label overlay, unit
visuals), chosen by a seeded generator; whenever a key turns the back pane off, `n` turns it on
again, so it is on all the time but for a moment. Before that, in the warm-up, it goes once
round every mode's cycle (zoom, back filter, boosts, resize, overlay, unit visuals) and visits every
layer with every back mode and the diffs grid, each shown before the next key (the sessions they
need are built then, as a user's first minutes build them).

Per period (`--period` seconds, 60 by default) it records: resident memory at the period's end
(VmRSS), Python objects alive, frames shown and their median interval (wall), the plain forward
pass's median wall and CPU time per frame (the runs that computed no back map along: the same work
on every layer and mode; CPU time of the worker thread, which ONNX Runtime runs on with the viewer's
one intra-op thread on a 2-core machine, so load from other processes moves it least), the back
worker's pass, back maps shown, keys typed, and worker errors (they must stay 0).

Frame time is compared in like conditions: the first seconds of every period (a third of it, at
most 5 s) are a canonical window, where the script resets the viewer (Esc: default layer, unit 0,
modes off) and turns the gradient back pane on, and types nothing else; `canon cpu` is the median
forward-worker CPU time per run in that window (how much of it also computes a back map depends
on the layer and mode, hence the fixed state), `canon frame` the median interval of frames shown.

Summary: growth = resident memory at the end / at the end of the warm-up (`--warmup`, 60 s) - 1
(goal: under 5 %), the least-squares slope after the warm-up (MiB/min), and drift = the canonical
window's forward CPU time (and frame interval) in the last period / in the first whole period after
the warm-up (goal: about 1; the whole periods' medians too, which move with the keys typed). `--json FILE` writes all of it. `--leak-kib N` keeps N KiB per forward pass
alive on purpose (the test checks that the growth figure sees such a leak).

usage: xvfb-run -a python bench/bench_soak.py [--minutes 30] [--model PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUNDLED = ROOT / "models" / "digits" / "digits-cnn.onnx"
CACHE = ROOT / "bench" / ".cache"
KEYS = "oouuljikLJIKnmbmaazztT089"  # the viewer's keys the script types (layers twice as often)
_LEAK: list[bytes] = []  # --leak-kib: what the injected leak keeps


def soak_video(path: Path, size=(320, 240), frames: int = 60) -> Path:
    import cv2
    import numpy as np

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
        rng = np.random.default_rng(0)
        for i in range(frames):
            frame = (rng.random((size[1], size[0], 3)) * 80).astype(np.uint8)
            cv2.circle(frame, (40 + 4 * i, size[1] // 2), 30, (30, 200, 250), -1)
            cv2.putText(frame, str(i % 10), (size[0] // 2, size[1] // 2 + 40), cv2.FONT_HERSHEY_SIMPLEX, 4,
                        (255, 255, 255), 8)
            writer.write(frame)
        writer.release()
    return path


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Period:
    """What happened since the last sample (appended from worker threads; list.append is atomic)."""

    def __init__(self):
        self.forward_wall: list[float] = []
        self.forward_cpu: list[float] = []
        self.back_wall: list[float] = []
        self.back_cpu: list[float] = []
        self.canon_cpu: list[float] = []  # forward runs in the canonical window (see `soak`)
        self.canon_shown: list[float] = []
        self.started = time.monotonic()
        self.canon = False  # in the canonical window now
        self.shown: list[float] = []  # monotonic times a frame was shown
        self.backs_shown = 0
        self.keys = 0


def _timed(fn, wall: str, cpu: str, holder, leak_kib: int = 0):
    """`fn` timed into the current period's lists (and, in the canonical window, `canon_cpu`)."""
    def run(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn(*args, **kwargs)
        period = holder[0]
        getattr(period, cpu).append(time.thread_time() - c0)
        getattr(period, wall).append(time.perf_counter() - t0)
        if period.canon and cpu == "forward_cpu":
            period.canon_cpu.append(time.thread_time() - c0)
        if leak_kib:
            _LEAK.append(bytes(bytearray(leak_kib * 1024)))
        return out

    return run


def _median_ms(values: list[float]) -> float | None:
    return 1000 * statistics.median(values) if values else None


def soak(model_path: Path, video: Path, seconds: float, warmup: float, period_seconds: float,
         action_seconds: float, seed: int = 0, leak_kib: int = 0, log=print, canon_seconds: float | None = None) -> dict:
    import random

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from onnxprobe.model import ProbeModel
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.qt.window import ViewerWindow
    from onnxprobe.viewer.sources import check_video
    from onnxprobe.viewer.workers import inference_threads

    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = ProbeModel.load(model_path, device="cpu", threads=inference_threads())
    viewer = Viewer(model, check_video(video))
    holder = [Period()]
    viewer.passes.compute = _timed(viewer.passes.compute, "forward_wall", "forward_cpu", holder, leak_kib)
    viewer.passes.back = _timed(viewer.passes.back, "back_wall", "back_cpu", holder)
    errors: list[str] = []
    report = viewer._report

    def counted_report(text):
        errors.append(text)
        report(text)

    viewer._report = counted_report
    poll = viewer.poll

    def counted_poll():
        applied = poll()
        period = holder[0]
        if "forward" in applied:
            period.shown.append(time.monotonic())
            if period.canon:
                period.canon_shown.append(time.monotonic())
        if "back" in applied:
            period.backs_shown += 1
        return applied

    viewer.poll = counted_poll
    window = ViewerWindow(viewer)  # connects the bridge to viewer.poll: after the wrap
    rng = random.Random(seed)
    if canon_seconds is None:
        canon_seconds = min(5.0, period_seconds / 3)
    # first every layer once with every back mode and the diffs grid, each shown before the next key
    # (the sessions they need are built now, in the warm-up, not counted as growth)
    from onnxprobe.render.backmaps import FILTERS
    from onnxprobe.render.grid import GAMMA_BOOSTS, PER_CHANNEL_BOOSTS
    from onnxprobe.viewer.state import BACK_MODES, ZOOMS

    cycles = "z" * len(ZOOMS) + "m" * len(FILTERS) + "t" * len(GAMMA_BOOSTS) + "T" * len(PER_CHANNEL_BOOSTS) + "008899"
    prime = list(cycles + ("n" * len(BACK_MODES) + "aa" + "o") * len(viewer.state.layers))
    typed_at = [0.0]

    def caught_up() -> bool:
        wanted = viewer._settings
        shown = viewer.last_back if viewer.state.back_on else viewer.last_forward
        return shown is not None and shown.settings == wanted

    def act():
        period = holder[0]
        if prime:
            if not caught_up() and time.monotonic() - typed_at[0] < 10:
                return
            viewer.handle_key(prime.pop(0))
            typed_at[0] = time.monotonic()
        elif time.monotonic() - period.started < canon_seconds:  # the canonical window: reset, gradient
            if not period.canon:
                period.canon = True
                viewer.handle_key("Escape")
                viewer.handle_key("n")
                period.keys += 2
            return
        elif period.canon:
            period.canon = False
        elif time.monotonic() - typed_at[0] >= action_seconds:
            viewer.handle_key(rng.choice(KEYS))
            typed_at[0] = time.monotonic()
        else:
            return
        holder[0].keys += 1
        if not viewer.state.back_on and not prime:
            viewer.handle_key("n")
            holder[0].keys += 1

    rows: list[dict] = []
    started = time.monotonic()
    marks = {"warm": None}

    def sample():
        period, holder[0] = holder[0], Period()
        gc.collect()
        now = time.monotonic() - started
        gaps = [b - a for a, b in zip(period.shown, period.shown[1:])]
        row = {"t": round(now, 1), "rss_mib": round(rss_mib(), 2), "objects": len(gc.get_objects()),
               "frames": len(period.shown), "frame_ms": _median_ms(gaps),
               "forward_ms": _median_ms(period.forward_wall), "forward_cpu_ms": _median_ms(period.forward_cpu),
               "back_ms": _median_ms(period.back_wall), "back_cpu_ms": _median_ms(period.back_cpu),
               "backs": period.backs_shown, "keys": period.keys, "errors": len(errors),
               "canon_cpu_ms": _median_ms(period.canon_cpu),
               "canon_frame_ms": _median_ms([b - a for a, b in zip(period.canon_shown, period.canon_shown[1:])])}
        rows.append(row)
        log(_row_text(row))
        if marks["warm"] is None and now >= warmup - 1e-6:
            marks["warm"] = len(rows) - 1
        if now >= seconds - 1e-6:
            window.close()
            app.quit()

    log(_HEADER)
    viewer.start()
    window.show()
    viewer.handle_key("n")  # the back pane on: gradient
    timers = []
    for interval, fn in ((0.02, act), (period_seconds, sample)):
        timer = QTimer()
        timer.timeout.connect(fn)
        timer.start(int(1000 * interval))
        timers.append(timer)
    if warmup % period_seconds:  # a sample at the end of the warm-up too
        QTimer.singleShot(int(1000 * warmup), sample)
    app.exec()
    for timer in timers:
        timer.stop()
    viewer.stop()
    return summarize(rows, marks["warm"] or 0, errors)


_HEADER = (f"{'t s':>7} {'RSS MiB':>8} {'objects':>8} {'frames':>6} {'frame ms':>8} {'fwd ms':>7} {'fwd cpu':>7} "
           f"{'back ms':>7} {'back cpu':>8} {'backs':>5} {'keys':>4} {'errors':>6} {'canon cpu':>9} {'canon frame':>11}")


def _row_text(row: dict) -> str:
    f = lambda v, w: f"{v:{w}.2f}" if isinstance(v, float) else f"{'-' if v is None else v:>{w}}"  # noqa: E731
    return (f"{row['t']:7.0f} {row['rss_mib']:8.1f} {row['objects']:8d} {row['frames']:6d} {f(row['frame_ms'], 8)} "
            f"{f(row['forward_ms'], 7)} {f(row['forward_cpu_ms'], 7)} {f(row['back_ms'], 7)} "
            f"{f(row['back_cpu_ms'], 8)} {row['backs']:5d} {row['keys']:4d} {row['errors']:6d} {f(row['canon_cpu_ms'], 9)} "
            f"{f(row['canon_frame_ms'], 11)}")


def summarize(rows: list[dict], warm: int, errors: list[str]) -> dict:
    after = rows[warm:]
    base, last = after[0], after[-1]
    times = [r["t"] / 60 for r in after]
    rss = [r["rss_mib"] for r in after]
    slope = 0.0
    if len(after) > 1:
        mt, mr = statistics.fmean(times), statistics.fmean(rss)
        slope = sum((t - mt) * (r - mr) for t, r in zip(times, rss)) / sum((t - mt) ** 2 for t in times)
    first = rows[warm + 1] if len(rows) > warm + 1 else last  # the first whole period after the warm-up

    def drift(key):
        return last[key] / first[key] if last[key] and first[key] else None

    return {"rows": rows, "warm_index": warm, "rss_warm_mib": base["rss_mib"], "rss_end_mib": last["rss_mib"],
            "rss_max_after_warm_mib": max(rss), "growth": last["rss_mib"] / base["rss_mib"] - 1,
            "slope_mib_per_min": slope, "objects_warm": base["objects"], "objects_end": last["objects"],
            "drift_canon_cpu": drift("canon_cpu_ms"), "drift_canon_frame_ms": drift("canon_frame_ms"),
            "drift_forward_cpu": drift("forward_cpu_ms"), "drift_forward_wall": drift("forward_ms"),
            "drift_frame_ms": drift("frame_ms"), "drift_back_cpu": drift("back_cpu_ms"),
            "frames": sum(r["frames"] for r in rows), "backs": sum(r["backs"] for r in rows),
            "keys": sum(r["keys"] for r in rows), "errors": errors[:20], "error_count": len(errors)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample (default 60)")
    parser.add_argument("--period", type=float, default=60.0, help="seconds per sample row (default 60)")
    parser.add_argument("--action-seconds", type=float, default=0.5, help="a key every this many seconds")
    parser.add_argument("--model", default=str(BUNDLED), help="ONNX model (default: the bundled digits CNN)")
    parser.add_argument("--video", help="a video file (default: a generated 320x240 clip in bench/.cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows and the summary here")
    parser.add_argument("--leak-kib", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    video = Path(args.video) if args.video else soak_video(CACHE / "soak-clip-320x240.avi")
    platform = os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "wayland")
    print(f"soak: {Path(args.model).name} on {video.name}, {args.minutes:g} min, platform {platform}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    result = soak(Path(args.model), video, 60 * args.minutes, args.warmup, args.period, args.action_seconds,
                  args.seed, args.leak_kib, log=lambda line: print(line, flush=True))
    result.update({"platform": platform, "model": str(args.model), "minutes": args.minutes,
                   "load_end": os.getloadavg()[0]})
    d = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"resident memory {result['rss_warm_mib']:.1f} MiB after the warm-up -> {result['rss_end_mib']:.1f} MiB at "
          f"the end: growth {100 * result['growth']:+.2f} % (goal < 5 %), slope {result['slope_mib_per_min']:+.3f} MiB/min; "
          f"python objects {result['objects_warm']} -> {result['objects_end']}")
    print(f"drift (last period / first after the warm-up): canonical state: forward cpu {d(result['drift_canon_cpu'])}, "
          f"frame interval {d(result['drift_canon_frame_ms'])}; whole periods: forward cpu {d(result['drift_forward_cpu'])}, forward wall "
          f"{d(result['drift_forward_wall'])}, frame interval {d(result['drift_frame_ms'])}, back cpu "
          f"{d(result['drift_back_cpu'])}; {result['frames']} frames, {result['backs']} back maps, {result['keys']} keys, "
          f"{result['error_count']} worker errors")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "soak-gui"
    sys.exit(main())
