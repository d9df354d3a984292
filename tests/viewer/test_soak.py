"""A short soak of the viewer window (bench/bench_soak.py, offscreen): a looping video with the back
pane on while a script switches layers, units and modes. Resident memory must not grow and frame
time must not drift after the warm-up; a leak put in on purpose must show in the same figure.

Loose bounds (a ~20 s run after a 12 s warm-up, on a loaded machine): memory grows by less than
10 % (the long run's goal is 5 % over 30 minutes; `python bench/bench_soak.py`), and in the same
state (the canonical window of each period: reset, gradient back pane) the forward worker's CPU time
per run and the frame interval in the last period are within a factor 3 of the first's. The leaking run keeps
512 KiB per forward pass alive (about 15 MiB/s at the video's 30 fps): well over the bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SOAK = ["--minutes", "0.55", "--warmup", "12", "--period", "3", "--action-seconds", "0.3"]


def _soak(tmp_path, video, name: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
           "QT_LOGGING_RULES": "default.warning=false"}
    env.pop("DISPLAY", None)
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "bench_soak.py"), *SOAK, "--video",
                             str(video), "--json", str(tmp_path / f"{name}.json"), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_short_soak_holds_memory_and_frame_time(video_path, tmp_path):
    runs = {"clean": _soak(tmp_path, video_path, "clean"),  # 30 frames at 30 fps, looping
            "leak": _soak(tmp_path, video_path, "leak", "--leak-kib", "512")}
    for name, proc in runs.items():  # side by side: two light processes, one wait
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    clean = json.loads((tmp_path / "clean.json").read_text())
    leak = json.loads((tmp_path / "leak.json").read_text())

    assert clean["error_count"] == 0, clean["errors"]
    assert clean["frames"] > 60 and clean["backs"] > 10 and clean["keys"] > 30  # it ran, back pane on, keys typed
    assert clean["growth"] < 0.10, clean["rows"]
    assert 1 / 3 < clean["drift_canon_cpu"] < 3, clean["rows"]  # like for like: the canonical window's
    assert clean["drift_canon_frame_ms"] < 3, clean["rows"]

    assert leak["frames"] > 60
    assert leak["growth"] > 0.25, leak["rows"]  # the figure sees a leak of 512 KiB per frame
