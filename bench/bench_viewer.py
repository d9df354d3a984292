"""The live viewer's frame rate against bare inference, and the GUI event loop's longest stall.

For each model (the bundled digits CNN, or the tiny test CNN while it is missing; a torchvision
ResNet-18 at 224x224, random weights, exported once and cached under bench/.cache/), in one run:
  bare fps    the plain model forward on preprocessed frames, back to back, on this thread (the
              mean of a run just before and one just after the viewer's)
  viewer fps  frames the offscreen viewer window displayed per second, reading a video file as
              fast as it can (grabber, forward worker and GUI thread all running)
  ratio       viewer / bare (goal: at least 0.8; a ratio of two rates measured in the same run, the
              number to compare across machines)
  back maps/s back-pane updates per second (back mode)
  cpu ratio   process CPU time per bare forward / per frame the viewer shows (all its threads):
              the share of the work per frame that is the forward itself, which load from other
              work on the machine moves least (ORT pool spinning is off in this bench, so CPU time
              is work done)
  stall       the longest gap between ticks of a 2 ms GUI timer while inference runs, minus 2 ms
              (goal: under 50 ms)
Each is measured in forward mode and again with the gradient back pane on; a line under each gives
the CPU milliseconds per shown frame of each thread (where Linux's /proc says), the profile of where
a frame goes. Under load from other work the wall ratio flatters the viewer (its several threads get
more of the machine than the bare loop's one): compare cpu ratios across runs, and say the load.
The quiet-machine bound is the wall ratio the viewer can reach with nothing else running: a frame
takes at least its busiest thread's CPU time, and at least its whole CPU time spread over the cores.
usage: QT_QPA_PLATFORM=offscreen python bench/bench_viewer.py [--seconds S] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ONNXPROBE_ORT_SPIN", "0")  # CPU time = work done (read when sessions are built)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from common import BUNDLED, CACHE, ROOT, load_line, torchvision_onnx  # noqa: E402

sys.path.insert(0, str(ROOT))

from onnxprobe.model import ProbeModel  # noqa: E402
from onnxprobe.viewer.workers import inference_threads  # noqa: E402


def bench_video(size=(320, 240), frames: int = 60) -> str:
    path = CACHE / f"viewer-clip-{size[0]}x{size[1]}.avi"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
        rng = np.random.default_rng(0)
        for i in range(frames):
            frame = (rng.random((size[1], size[0], 3)) * 80).astype(np.uint8)
            cv2.circle(frame, (40 + 4 * i, size[1] // 2), 30, (30, 200, 250), -1)
            writer.write(frame)
        writer.release()
    return str(path)


def bare_fps(model: ProbeModel, video: str, seconds: float) -> float:
    capture = cv2.VideoCapture(video)
    tensors = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        tensors.append(model.preprocess(frame))
    session = model.forward_session()
    feeds = lambda x: {model.input_name: x}  # noqa: E731
    for x in tensors[:3]:
        session.run(feeds(x))
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        session.run(feeds(tensors[count % len(tensors)]))
        count += 1
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each live thread of this process, by thread name ({} without /proc)."""
    import threading

    names = {t.native_id: t.name.removeprefix("onnxprobe-") for t in threading.enumerate()}
    names[threading.main_thread().native_id] = "GUI"
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def viewer_run(app, model: ProbeModel, video: str, seconds: float, keys: str = "") -> tuple:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.qt.window import ViewerWindow
    from onnxprobe.viewer.sources import VideoSource

    viewer = Viewer(model, VideoSource(video, pace=False))
    window = ViewerWindow(viewer)
    viewer.start()
    window.show()
    for key in keys:
        viewer.handle_key(key)
    shown, backs = [], []
    viewer.state.events.connect(lambda name: shown.append(time.perf_counter()) if name == "forward" else None)
    viewer.state.events.connect(lambda name: backs.append(time.perf_counter()) if name == "back" else None)
    clock = QElapsedTimer()
    clock.start()
    gaps = {"last": None, "max": 0.0, "measuring": False}

    def tick():
        now = clock.nsecsElapsed() / 1e9
        if gaps["measuring"] and gaps["last"] is not None:
            gaps["max"] = max(gaps["max"], now - gaps["last"])
        gaps["last"] = now

    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(tick)
    timer.start()
    loop = QEventLoop()
    warmup = min(2.0, seconds / 2)

    def begin():
        gaps["measuring"] = True
        gaps["cpu"] = time.process_time()
        gaps["threads"] = thread_cpu()
        gaps["last"] = None
        shown.clear()
        backs.clear()

    QTimer.singleShot(int(warmup * 1000), begin)  # session building and first frames are not the steady state
    def end():
        gaps["threads_end"] = thread_cpu()  # before the window closes and the workers stop
        loop.quit()

    QTimer.singleShot(int((warmup + seconds) * 1000), end)
    loop.exec()
    timer.stop()
    cpu_per_frame = (time.process_time() - gaps["cpu"]) / max(1, len(shown))
    per_thread = {name: (cpu - gaps["threads"].get(name, 0.0)) / max(1, len(shown))
                  for name, cpu in gaps["threads_end"].items()}
    fps = (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 else 0.0
    back_fps = len(backs) / seconds
    window.close()
    return fps, max(0.0, gaps["max"] - 0.002), back_fps, cpu_per_frame, per_thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    models = []
    if BUNDLED.exists():
        models.append(("digits (bundled)", BUNDLED))
    else:
        from tests.conftest import make_conv_model

        tiny = CACHE / "viewer-tiny.onnx"
        CACHE.mkdir(parents=True, exist_ok=True)
        make_conv_model(tiny, size=(32, 32))
        models.append(("tiny test CNN (bundled model missing)", tiny))
    models.append(("resnet18 224", torchvision_onnx("resnet18")))
    video = bench_video()
    print(f"{'model':<38} {'mode':<9} {'bare fps':>9} {'viewer fps':>11} {'ratio':>6} {'stall ms':>9} {'back maps/s':>12} {'cpu ratio':>9}")
    for name, path in models:
        model = ProbeModel.load(path, device=args.device, threads=inference_threads())  # as `onnxprobe view` loads it
        for mode, keys in (("forward", ""), ("back", "n")):
            before, cpu_a = bare_fps(model, video, args.seconds / 4)  # bare runs on both sides of the viewer's:
            shown, stall, backs, cpu_frame, per_thread = viewer_run(app, model, video, args.seconds, keys)
            after, cpu_b = bare_fps(model, video, args.seconds / 4)
            bare, cpu_bare = (before + after) / 2, (cpu_a + cpu_b) / 2  # load that drifts hits both alike
            print(f"{name:<38} {mode:<9} {bare:9.1f} {shown:11.1f} {shown / bare:6.2f} {stall * 1000:9.1f}"
                  f" {backs:12.1f} {cpu_bare / cpu_frame:8.2f}   [{model.device}; {load_line()}]", flush=True)
            threads = sorted(per_thread.items(), key=lambda kv: -kv[1])
            print(f"{'':<38} CPU ms per frame: bare forward {cpu_bare * 1000:.1f}; viewer "
                  + ", ".join(f"{name} {ms * 1000:.1f}" for name, ms in threads if ms >= 5e-5), flush=True)
            if threads:  # a frame takes at least its busiest thread's time, and its CPU time over the cores
                busiest, cores = threads[0], os.cpu_count() or 1
                bound = max(busiest[1], cpu_frame / cores)
                print(f"{'':<38} quiet-machine bound: viewer / bare <= {cpu_bare / bound:.2f} on {cores} cores "
                      f"({'the ' + busiest[0] + ' thread' if bound == busiest[1] else 'all cores'} limits)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
