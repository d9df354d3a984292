"""The atlas's pictures from photos: the pictures `optimize --from` draws with the same settings,
linked from the pages, in the manifest, resumed, and the model's sample photos by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from onnxprobe.atlas import build_atlas
from onnxprobe.cli import main
from onnxprobe.optimize import RenderSettings
from tests.atlas.conftest import files_of, page_refs

SETTINGS = dict(steps=6, seed=3)
LAYER = "relu1"
UNITS = [0, 2]


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[:, :, ::-1]


@pytest.fixture(scope="module")
def photos(atlas_digits_dir) -> list[Path]:
    return sorted(atlas_digits_dir.rglob("*.png"))[:2]


@pytest.fixture(scope="module")
def photo_atlas(gray_model_path, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("photo-atlas") / "atlas"
    result = build_atlas(str(gray_model_path), [LAYER], out, settings=RenderSettings.resolve(**SETTINGS), units=UNITS,
                         photo_pictures=[str(p) for p in photos])
    assert result.photo_pictures_drawn == 1 + len(UNITS)  # the layer's own pictures and each unit's
    return out


@pytest.mark.parametrize("picture", ["accentuate", "caricature", "invert"])
def test_the_pictures_are_those_optimize_from_draws(photo_atlas, gray_model_path, photos, tmp_path, picture):
    """Same function, same preset, steps and seed: the same image, pixel for pixel."""
    manifest = json.loads((photo_atlas / "manifest.json").read_text())
    layer = manifest["layers"][LAYER]
    for photo in photos:
        name = photo.stem
        out = tmp_path / f"{picture}-{name}"
        argv = ["optimize", str(gray_model_path), "--from", str(photo), "--picture", picture, "--layer", LAYER,
                "--steps", str(SETTINGS["steps"]), "--seed", str(SETTINGS["seed"]), "--out", str(out), "--quiet"]
        if picture == "accentuate":
            for unit in UNITS:
                assert main(argv + ["--unit", str(unit)]) == 0
                entry = next(e for e in layer["units"][str(unit)]["photo_pictures"] if e["photo"] == name)
                drawn = json.loads((out / f"accentuate-{name}.json").read_text())
                assert np.array_equal(_rgb(photo_atlas / entry["accentuate"]["file"]), _rgb(out / f"accentuate-{name}.png"))
                assert entry["accentuate"]["value"] == drawn["value"] and entry["accentuate"]["curve"] == drawn["curve"]
        else:
            assert main(argv) == 0
            entry = next(e for e in layer["photo_pictures"] if e["photo"] == name)
            assert np.array_equal(_rgb(photo_atlas / entry[picture]["file"]), _rgb(out / f"{picture}-{name}.png"))
            assert np.array_equal(_rgb(photo_atlas / entry["image"]), _rgb(out / f"{picture}-{name}-photo.png"))


def test_the_pages_link_every_picture(photo_atlas):
    manifest = json.loads((photo_atlas / "manifest.json").read_text())
    layer = manifest["layers"][LAYER]
    assert manifest["photo_pictures"]["seed"] == SETTINGS["seed"] and len(manifest["photo_pictures"]["photos"]) == 2
    layer_files = {entry[kind]["file"] for entry in layer["photo_pictures"] for kind in ("caricature", "invert")}
    layer_files |= {entry["image"] for entry in layer["photo_pictures"]}
    assert len(layer_files) == 6

    def shown(page: str) -> set[str]:
        path = photo_atlas / page
        return {(path.parent / src).resolve().relative_to(photo_atlas.resolve()).as_posix()
                for src in page_refs(path).images}

    assert layer_files <= shown(layer["page"])
    for unit in UNITS:
        entry = layer["units"][str(unit)]
        accentuated = {e["accentuate"]["file"] for e in entry["photo_pictures"]}
        assert len(accentuated) == 2 and accentuated | layer_files <= shown(entry["page"])
        text = (photo_atlas / entry["page"]).read_text()
        assert "Pictures from the photos" in text and "RMS distance" in text and "rise" in text


def test_a_killed_run_resumes_and_other_photos_redo_them(photo_atlas, gray_model_path, photos, tmp_path):
    """A unit or layer whose record is missing (the run died before writing it) is drawn again, the
    others are kept; a run without photo pictures keeps showing them; other photos are other settings."""
    out = tmp_path / "atlas"
    shutil.copytree(photo_atlas, out)
    records = sorted((out / "photos").rglob("*.json"))
    assert [p.name for p in records] == ["layer.json", "unit_00000.json", "unit_00002.json"]
    records[0].unlink()  # the layer's pictures and one unit's, as if killed before their records
    records[2].unlink()
    stamps = {p: p.stat().st_mtime_ns for p in [records[1]]}
    settings = RenderSettings.resolve(**SETTINGS)
    again = build_atlas(str(gray_model_path), [LAYER], out, settings=settings, units=UNITS,
                        photo_pictures=[str(p) for p in photos])
    assert again.units_rendered == 0 and again.photo_pictures_drawn == 2
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    before, after = files_of(photo_atlas), files_of(out)
    assert sorted(before) == sorted(after)
    assert [rel for rel in before if before[rel].read_bytes() != after[rel].read_bytes()] == []

    plain = build_atlas(str(gray_model_path), [LAYER], out, settings=settings, units=UNITS)
    assert plain.photo_pictures_drawn == 0
    assert (out / "manifest.json").read_bytes() == (photo_atlas / "manifest.json").read_bytes()

    other = build_atlas(str(gray_model_path), [LAYER], out, settings=settings, units=[0],
                        photo_pictures=[str(photos[0])])
    assert other.photo_pictures_drawn == 2  # the layer and unit 0 again, for one photo
    manifest = json.loads((out / "manifest.json").read_text())
    layer = manifest["layers"][LAYER]
    assert [e["photo"] for e in layer["photo_pictures"]] == [photos[0].stem]
    assert "photo_pictures" in layer["units"]["0"] and "photo_pictures" not in layer["units"]["2"]


def test_the_model_sample_photos_by_default(gray_model_path, photos, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    model = shutil.copy(gray_model_path, folder / "gray.onnx")
    argv = ["atlas", str(model), "--layer", LAYER, "--units", "1", "--steps", "2", "--photo-pictures", "--quiet"]
    assert main(argv + ["--out", str(tmp_path / "none")]) == 2  # no samples/ beside it: one line, nothing written
    assert "--photo-pictures needs photos" in capsys.readouterr().err and not (tmp_path / "none").exists()
    (folder / "samples").mkdir()
    shutil.copy(photos[1], folder / "samples" / "seven.png")
    assert main(argv + ["--out", str(tmp_path / "atlas")]) == 0
    manifest = json.loads((tmp_path / "atlas" / "manifest.json").read_text())
    assert [e["photo"] for e in manifest["layers"][LAYER]["units"]["1"]["photo_pictures"]] == ["seven"]
    assert "drew the pictures from photos of 2 layer(s) and unit(s)" in capsys.readouterr().out
    # the flag takes no value, so it may stand before MODEL; --photo names photos of one's own
    mine = tmp_path / "mine.png"
    shutil.copy(photos[0], mine)
    argv = ["atlas", "--photo-pictures", str(model), "--layer", LAYER, "--units", "1", "--steps", "2", "--quiet",
            "--photo", str(mine), "--out", str(tmp_path / "own")]
    assert main(argv) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "own" / "manifest.json").read_text())
    assert [e["photo"] for e in manifest["layers"][LAYER]["units"]["1"]["photo_pictures"]] == ["mine"]


def test_the_library_call_takes_them_too(gray_model_path, photos, tmp_path):
    import onnxprobe

    atlas = onnxprobe.load(gray_model_path).atlas(LAYER, tmp_path / "atlas", units=[3], steps=2, progress=False,
                                                  photo_pictures=[photos[0]])
    manifest = json.loads((tmp_path / "atlas" / "manifest.json").read_text())
    entry = manifest["layers"][LAYER]["units"]["3"]["photo_pictures"][0]
    assert entry["photo"] == photos[0].stem and (tmp_path / "atlas" / entry["accentuate"]["file"]).is_file()
    assert atlas is not None


def test_a_job_killed_among_its_pictures_resumes_to_the_same_atlas(gray_model_path, photos, tmp_path):
    """SIGKILL while the pictures are drawn: the rerun keeps the finished ones (not redone) and ends
    with the atlas one uninterrupted run makes."""
    import signal
    import subprocess
    import sys
    import time

    from tests.atlas.conftest import TEMP_MARK, assert_all_files_whole, assert_same_atlas
    from tests.conftest import ROOT

    def argv(out):
        return [sys.executable, "-m", "onnxprobe", "atlas", str(gray_model_path), "--layer", "relu2", "--steps", "40",
                "--seed", "1", "--quiet", "--out", str(out), *(a for p in photos for a in ("--photo", str(p)))]

    reference = tmp_path / "reference"
    assert subprocess.run(argv(reference), cwd=ROOT, capture_output=True, timeout=600).returncode == 0
    out = tmp_path / "atlas"
    job = subprocess.Popen(argv(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    records = lambda: list((out / "photos").rglob("*.json")) if (out / "photos").exists() else []  # noqa: E731
    deadline = time.monotonic() + 300
    while len(records()) < 2 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    done_before = len(records())
    assert job.returncode == -signal.SIGKILL and 2 <= done_before < 7, "the job must be killed among its pictures"
    assert not (out / "manifest.json").exists()
    assert_all_files_whole(out)
    stamps = {p: p.stat().st_mtime_ns for p in records()}
    resumed = subprocess.run(argv(out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"drew the pictures from photos of {7 - done_before} layer(s) and unit(s)" in resumed.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMP_MARK)]
    assert_same_atlas(out, reference)
