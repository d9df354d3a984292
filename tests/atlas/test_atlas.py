"""The unit atlas: complete and consistent, resumable after SIGKILL, the same on a Dask cluster,
safe with hostile layer names, and really browsable in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from onnxprobe.atlas import build_atlas
from onnxprobe.cli import main
from onnxprobe.fsutil import inside
from onnxprobe.model import ProbeModel
from onnxprobe.optimize import RenderSettings
from onnxprobe.viewer.atlas_source import AtlasSource
from tests.atlas.browser import Chromium
from tests.programs import CHROMIUM, require_program
from tests.atlas.conftest import (SAFE_FILE, TEMP_MARK, assert_all_files_whole, assert_same_atlas, files_of,
                                  page_refs)
from tests.conftest import ROOT, make_conv_model

DIGIT_LAYERS = ("conv2", "logits")
TINY_ARGS = dict(steps=40, restarts=2, batch=2, seed=5)  # batch 2 / 2 restarts: one unit per task
TINY = RenderSettings.resolve(**TINY_ARGS)


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


@pytest.fixture(scope="module")
def digits_atlas(digits_model_path, atlas_digits_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits-atlas") / "atlas"
    argv = ["atlas", str(digits_model_path), "--out", str(out), "--data", str(atlas_digits_dir), "--steps", "12",
            "--restarts", "2", "--quiet"] + [a for layer in DIGIT_LAYERS for a in ("--layer", layer)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def reference_tiny_atlas(gray_model_path, atlas_digits_dir, tmp_path_factory) -> Path:
    """The tiny model's atlas built in one uninterrupted run in this process."""
    out = tmp_path_factory.mktemp("reference") / "atlas"
    build_atlas(str(gray_model_path), ["relu1", "relu2"], out, str(atlas_digits_dir), settings=TINY)
    return out


# ---- complete and consistent ---------------------------------------------------------------

def test_bundled_model_atlas_is_complete_and_consistent(digits_atlas, digits_model_path, atlas_digits_dir):
    manifest = json.loads((digits_atlas / "manifest.json").read_text())
    model = ProbeModel.load(digits_model_path)
    assert list(manifest["layers"]) == list(DIGIT_LAYERS)
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(atlas_digits_dir.rglob("*.png"))]
    x = np.concatenate([model.preprocess(im) for im in images])
    for name in DIGIT_LAYERS:
        layer = model.layer(name)
        entry = manifest["layers"][name]
        assert entry["count"] == layer.units and sorted(map(int, entry["units"])) == list(range(layer.units))
        acts = model.activations(x, [name], with_outputs=False)[name]
        per_image = acts.reshape(len(images), layer.units, -1)
        for key, unit in entry["units"].items():
            u = int(key)
            for kind in ("optimized", "optimized_montage", "top9", "top9_deconv"):
                assert (digits_atlas / unit[kind]).is_file(), (name, u, kind)
            optimized = _read_rgb(digits_atlas / unit["optimized"])
            assert optimized.shape == (28, 28, 3)
            assert [_read_rgb(digits_atlas / p).shape for p in unit["restarts"]] == [(28, 28, 3)] * 2
            # the stored image is the best restart and really drives this unit (up to 8-bit rounding)
            stats = unit["stats"]
            assert stats["best_activation"] == max(stats["restart_best_activations"])
            centre = tuple(s // 2 for s in layer.spatial_shape)
            replay = model.activations(model.preprocess(optimized[:, :, ::-1].copy()), [name], with_outputs=False)[name]
            value = replay[(0, u, *centre)]
            assert abs(value - stats["best_activation"]) <= 0.02 * abs(stats["best_activation"]) + 0.03
            # dataset statistics of this very unit (the slots are not shuffled)
            assert stats["mean"] == pytest.approx(per_image[:, u].mean(), rel=1e-4, abs=1e-5)
            assert stats["max"] == pytest.approx(per_image[:, u].max(), rel=1e-4, abs=1e-5)
            assert stats["fire_rate"] == pytest.approx((per_image[:, u].max(axis=1) > 0).mean())
    # the viewer's reader sees the same images
    source = AtlasSource(digits_atlas)
    assert source.image("conv2", 3).shape == (28, 28, 3)
    assert source.image("logits", 9, "top9") is not None


def test_every_page_link_and_image_resolves_inside_the_atlas(digits_atlas):
    pages = [p for p in digits_atlas.rglob("*.html")]
    manifest = json.loads((digits_atlas / "manifest.json").read_text())
    units = sum(len(e["units"]) for e in manifest["layers"].values())
    assert len(pages) == 1 + len(DIGIT_LAYERS) + units
    index = page_refs(digits_atlas / "index.html")
    assert len(index.links) == len(DIGIT_LAYERS)
    for page in pages:
        refs = page_refs(page)
        for target in refs.links + refs.images:
            assert "://" not in target and not target.startswith("/"), (page, target)
            assert (page.parent / target).resolve().is_file(), (page, target)
            inside(digits_atlas, os.path.relpath((page.parent / target).resolve(), digits_atlas.resolve()))
        text = page.read_text()
        assert "<script" not in text and "<link" not in text  # nothing to fetch, nothing to run


# ---- resumable, atomic ------------------------------------------------------------------------

def _unit_records(root: Path) -> list[Path]:
    return [p for p in (root / "units").rglob("unit_*.json")] if (root / "units").exists() else []


def test_kill_and_resume_gives_the_same_atlas(gray_model_path, atlas_digits_dir, reference_tiny_atlas, tmp_path):
    out = tmp_path / "atlas"
    argv = [sys.executable, "-m", "onnxprobe", "atlas", str(gray_model_path), "--layer", "relu1", "--layer", "relu2",
            "--out", str(out), "--data", str(atlas_digits_dir), "--quiet"]
    argv += [a for k, v in TINY_ARGS.items() for a in (f"--{k}", str(v))]
    job = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_unit_records(out)) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    done_before = len(_unit_records(out))
    assert job.returncode == -signal.SIGKILL and 3 <= done_before < 10, "the job must be killed mid-way"
    assert not (out / "manifest.json").exists()
    assert_all_files_whole(out)
    stamps = {p: p.stat().st_mtime_ns for p in _unit_records(out)}

    resumed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"rendered {10 - done_before} unit(s)")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished units were not redone
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMP_MARK)]
    assert_same_atlas(out, reference_tiny_atlas)


def test_stale_temporaries_are_removed_and_a_rerun_renders_nothing(reference_tiny_atlas, gray_model_path, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference_tiny_atlas, out)
    stale = out / "units" / "relu1" / (TEMP_MARK + "abc")
    stale.write_bytes(b"half a png")
    result = build_atlas(str(gray_model_path), ["relu1"], out, settings=TINY)
    assert result.units_rendered == 0 and not stale.exists()
    assert_same_atlas(out, reference_tiny_atlas)  # relu2 stays in the atlas


def test_position_reaches_the_units_and_the_key(gray_model_path, tmp_path):
    """`position` is read by the objective module for every unit ("mean": the channel), and an atlas
    made at another position is other settings."""
    from onnxprobe import objectives
    from onnxprobe.errors import UsageError

    model = ProbeModel.load(gray_model_path, device="cpu")
    out = tmp_path / "mean"
    build_atlas(model, ["relu1"], out, settings=RenderSettings.resolve(steps=2, seed=5), units=[1], position="mean")
    record = json.loads(next((out / "units").glob("*/unit_00001.json")).read_text())
    assert record["optimization"]["objective"] == objectives.channel(model, "relu1", 1, pre_activation=True).description
    assert json.loads((out / "manifest.json").read_text())["settings"]["objective"] == "channel (mean over positions)"
    with pytest.raises(UsageError, match="other settings"):
        build_atlas(model, ["relu1"], out, settings=RenderSettings.resolve(steps=2, seed=5), units=[1])


def _montages(root: Path, units) -> dict[str, bytes]:
    """The top-k montages (patches, deconv, backprop) of these units in the atlas's maxact folder."""
    names = {f"unit_{u:05d}_" for u in units}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "maxact").rglob("unit_*.png"))
            if p.name[:11] in names}


def test_units_draw_only_their_montages_and_a_later_run_adds_its_own(gray_model_path, atlas_digits_dir,
                                                                      reference_tiny_atlas, tmp_path):
    """`units` draws the top-k montages of those units only (it used to draw every unit of the layer:
    88 s for 4 units of a 256-unit layer), the same bytes a full atlas draws; a later run for another
    unit draws that one and keeps the earlier ones."""
    out = tmp_path / "atlas"
    build_atlas(str(gray_model_path), ["relu1", "relu2"], out, str(atlas_digits_dir), units=[1, 2], settings=TINY)
    every = _montages(out, range(6))
    expected = _montages(reference_tiny_atlas, [1, 2])
    assert len(expected) == 2 * 2 * 3  # two layers, two units, three montages: the reference drew them all
    assert every == expected
    build_atlas(str(gray_model_path), ["relu1", "relu2"], out, str(atlas_digits_dir), units=[0], settings=TINY)
    assert _montages(out, range(6)) == _montages(reference_tiny_atlas, [0, 1, 2])
    manifest = json.loads((out / "manifest.json").read_text())
    for layer in ("relu1", "relu2"):
        units = manifest["layers"][layer]["units"]
        assert sorted(units) == ["0", "1", "2"]
        assert all((out / units[u][kind]).is_file() for u in units for kind in ("top9", "top9_deconv", "top9_backprop"))


# ---- distributed ------------------------------------------------------------------------------

def test_local_dask_cluster_makes_the_same_atlas(gray_model_path, atlas_digits_dir, reference_tiny_atlas, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "atlas"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = build_atlas(str(gray_model_path), ["relu1", "relu2"], out, str(atlas_digits_dir),
                             scheduler=cluster.scheduler_address, settings=TINY)
        with Client(cluster) as client:
            loaded = client.run(lambda: len(__import__("onnxprobe.atlas.job", fromlist=["_MODELS"])._MODELS))
    assert result.units_rendered == 10
    assert sum(loaded.values()) >= 1  # the units were rendered by the workers
    assert_same_atlas(out, reference_tiny_atlas)


def test_a_worker_killed_mid_atlas_gives_the_local_atlas_byte_for_byte(digits_model_path, tmp_path):
    """The digits CNN's atlas (conv2 units 0-9, one unit per task) on a local cluster of 3 worker
    processes; one worker that is rendering a unit is SIGKILLed after 2 units arrived. The job
    completes, and every file (images, records, pages, manifest) equals a clean local run's."""
    from distributed import Client, LocalCluster

    from tests.maxact.test_cluster import BusyWorkerKiller

    # 200 steps, not TINY's 40: a task must outlast the driver's handling of the units that
    # arrived before it, or the job is over before the killer looks (it was at load 4 once the
    # workers' allocator was fixed: no worker had a task 30 s after the third unit arrived)
    args = dict(units=list(range(10)), settings=RenderSettings.resolve(**dict(TINY_ARGS, steps=200)))
    build_atlas(str(digits_model_path), ["conv2"], tmp_path / "local", **args)

    class Progress:  # build_atlas's progress bar: the killer sees each arriving unit
        def __init__(self, killer):
            self.update = killer

        def close(self):
            pass

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.wait_for_workers(3, timeout=60)
        killer = BusyWorkerKiller(client, after=2)
        result = build_atlas(str(digits_model_path), ["conv2"], tmp_path / "cluster", scheduler=cluster.scheduler_address,
                             progress=lambda total, label: Progress(killer), **args)
        assert killer.killed is not None and any(str(k).startswith("atlas-") for k in killer.victim_tasks)
        assert killer.killed not in client.run(os.getpid).values()
    assert result.units_rendered == 10 and killer.seen == 10  # each unit arrived once
    assert_same_atlas(tmp_path / "cluster", tmp_path / "local")
    assert len(list((tmp_path / "local" / "units" / "conv2").glob("unit_*_optimized.png"))) == 10


# ---- hostile names ----------------------------------------------------------------------------

HOSTILE = {"relu1": "../x", "conv2": "a/b:c", "relu2": "<script>alert(1)</script>"}


def _hostile_model(path: Path) -> None:
    model = make_conv_model(channels=1, size=(16, 16), seed=2)
    for node in model.graph.node:
        node.input[:] = [HOSTILE.get(n, n) for n in node.input]
        node.output[:] = [HOSTILE.get(n, n) for n in node.output]
    onnx.save(model, str(path))


def test_hostile_layer_names_give_safe_files_and_escaped_html(tmp_path):
    model_path = tmp_path / "hostile.onnx"
    _hostile_model(model_path)
    out = tmp_path / "site"
    assert main(["atlas", str(model_path), "--out", str(out), "--steps", "3", "--quiet"]
                + [a for name in HOSTILE.values() for a in ("--layer", name)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.onnx", "site"]  # nothing written outside
    for rel in files_of(out):
        assert all(SAFE_FILE.match(part) for part in rel.split("/")), rel
    pages = {p: p.read_text() for p in out.rglob("*.html")}
    assert len(pages) == 1 + 3 + (4 + 6 + 6)
    for page, text in pages.items():
        assert "<script" not in text, page
    index = pages[out / "index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index and "a/b:c" in index and "../x" in index
    for page in pages:
        refs = page_refs(page)
        assert all((page.parent / t).resolve().is_file() for t in refs.links + refs.images), page
    source = AtlasSource(out)
    assert sorted(source.layer_names) == sorted(HOSTILE.values())
    assert all(source.image(name, 0) is not None for name in HOSTILE.values())


# ---- bad input: one line, exit 2, nothing lost -----------------------------------------------

BAD = [
    ("no layer", ["--steps", "2"], "choose at least one --layer"),
    ("layer and all", ["--layer", "relu1", "--all"], "either --layer or --all"),
    ("unknown layer", ["--layer", "nope"], "nope"),
    ("restarts 0", ["--layer", "relu1", "--restarts", "0"], "--restarts must be at least 1"),
    ("steps 0", ["--layer", "relu1", "--steps", "0"], "--steps must be at least 1"),
    ("unknown preset", ["--layer", "relu1", "--preset", "set9"], "unknown preset 'set9'"),
    ("units out of range", ["--layer", "relu1", "--units", "99"], "out of range"),
    ("batch 0", ["--layer", "relu1", "--batch", "0"], "--batch must be at least 1"),
    ("other settings", ["--layer", "relu1", "--steps", "3", "--seed", "9"], "other settings"),
    ("out is the model", ["--layer", "relu1", "--out", "{d}/model.onnx"], "is the input model; refusing to overwrite"),
    ("missing data", ["--layer", "relu1", "--steps", "2", "--data", "{d}/nothing-here"], "nothing-here"),
    ("position max", ["--layer", "relu1", "--position", "max"], "--position max needs an image"),
    ("position outside", ["--layer", "relu1", "--position", "99,0"], "position 99,0 is outside layer 'relu1'"),
]


@pytest.mark.parametrize("why,args,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_loses_nothing(tmp_path, capsys, why, args, message):
    model_path = tmp_path / "model.onnx"
    make_conv_model(model_path, channels=1, size=(16, 16))
    out = tmp_path / "atlas"
    assert main(["atlas", str(model_path), "--out", str(out), "--layer", "relu2", "--steps", "2", "--quiet"]) == 0
    before = {rel: p.read_bytes() for rel, p in files_of(out).items()}
    capsys.readouterr()
    args = [a.replace("{d}", str(tmp_path)) for a in args]
    argv = ["atlas", str(model_path)] + (args if "--out" in args else args + ["--out", str(out)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    assert {rel: p.read_bytes() for rel, p in files_of(out).items()} == before


# ---- in a real browser ------------------------------------------------------------------------

def test_headless_chromium_browses_the_atlas(digits_atlas, artifacts_dir):
    executable = require_program(CHROMIUM, "apt-get install -y chromium")
    with Chromium(executable) as browser:
        browser.navigate((digits_atlas / "index.html").as_uri())
        assert browser.evaluate("document.title").startswith("Unit atlas")
        visited = []
        for selector in ('a[href^="layers/"]', "a.card"):
            visited.append(browser.click(selector))
            images = browser.images()
            assert images and all(i["complete"] and i["naturalWidth"] > 0 for i in images), images
        assert "/layers/" in visited[0] and "/units/" in visited[1]
        assert len(browser.images()) >= 7  # optimized, montage, 2 restarts, top-9 patches, deconv, backprop
        browser.screenshot(artifacts_dir / "atlas-unit-page.png")
        assert browser.console_errors == []
        assert all(url.startswith(("file:", "data:")) for url in browser.requests), browser.requests
