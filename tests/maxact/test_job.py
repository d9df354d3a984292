"""The whole job on real images: brute-force reference, resume, corrupt files, borders, names, video."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxprobe.maxact import load_result, run_maxact
from onnxprobe.maxact.crops import crop_box, crop_padded
from onnxprobe.maxact.datasets import open_dataset
from onnxprobe.maxact.job import STATE_DIR
from onnxprobe.graph.geometry import ReceptiveField
from tests.conftest import make_conv_model
from tests.maxact.conftest import mnist_digits, write_digits

LAYERS = ["relu1", "conv2", "logits"]


def reference_activations(model_path: Path, image_paths: list[Path], layers: list[str]) -> dict[str, np.ndarray]:
    """Plain ONNX Runtime on the model with the layers added as outputs; gray 0..1 input as the
    model's default preprocessing defines it for 1-channel 28x28 images."""
    model = onnx.load(str(model_path))
    for name in layers:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float32)[None] / 255.0 for p in image_paths])
    return dict(zip(layers, session.run(layers, {"image": x})))


def expected_top(acts: np.ndarray, k: int, by: str) -> list[list[int]]:
    flat = acts.reshape(acts.shape[0], acts.shape[1], -1)
    score = flat.max(axis=2) if by == "max" else flat.mean(axis=2)
    return [sorted(range(len(score)), key=lambda i: (-score[i, u], i))[:k] for u in range(score.shape[1])]


def hits_as_paths(result, layer):
    return [[h["image"] for h in unit.hits] for unit in result.units(layer)]


@pytest.mark.parametrize("by,top,shard_size,batch_size", [("max", 9, 7, 3), ("mean", 4, 60, 16)])
def test_job_equals_brute_force(gray_model_path, digits_dir, tmp_path, by, top, shard_size, batch_size):
    result = run_maxact(gray_model_path, digits_dir, LAYERS, top=top, by=by, out_dir=tmp_path / "out",
                        crops=False, deconv=False, shard_size=shard_size, batch_size=batch_size)
    items = open_dataset(digits_dir).items
    paths = [Path(item.source) for item in items]
    acts = reference_activations(gray_model_path, paths, LAYERS)
    for layer in LAYERS:
        want = [[str(paths[i]) for i in unit] for unit in expected_top(acts[layer], top, by)]
        assert hits_as_paths(result, layer) == want
        unit = result.unit(layer, 1)
        flat = acts[layer].reshape(len(paths), acts[layer].shape[1], -1)[:, 1]
        assert unit.mean == pytest.approx(float(flat.mean()), rel=1e-5, abs=1e-6)
        assert unit.max == pytest.approx(float(flat.max()), rel=1e-6)
        assert unit.fire_rate == pytest.approx(float((flat.max(axis=1) > 0).mean()))
        best = unit.hits[0]
        i = paths.index(Path(best["image"]))
        spatial = acts[layer].shape[2:]
        if spatial:
            assert tuple(best["location"]) == np.unravel_index(int(np.argmax(flat[i])), spatial)


def _records(out: Path) -> dict:
    summary = json.loads((out / "maxact.json").read_text())
    return {name: json.loads((out / file).read_text()) for name, file in summary["layers"].items()}


def test_resume_after_interruption_equals_one_pass(gray_model_path, digits_dir, tmp_path):
    kwargs = dict(top=5, crops=False, deconv=False, shard_size=8, batch_size=4)
    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path / "one", **kwargs)
    seen = []

    def interrupt(result):
        seen.append(result.shard_id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path / "two", on_shard=interrupt, **kwargs)
    assert not (tmp_path / "two" / "maxact.json").exists()
    rerun = []
    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path / "two", on_shard=lambda r: rerun.append(r.shard_id), **kwargs)
    assert sorted(rerun) == list(range(3, math.ceil(60 / 8)))  # finished shards were not run again
    assert _records(tmp_path / "two") == _records(tmp_path / "one")
    assert not list((tmp_path / "two" / STATE_DIR).glob(".onnxprobe-tmp-*"))


def test_other_job_in_same_folder_is_refused(gray_model_path, digits_dir, tmp_path):
    from onnxprobe.errors import UsageError

    run_maxact(gray_model_path, digits_dir, ["relu1"], top=3, out_dir=tmp_path, crops=False)
    with pytest.raises(UsageError, match="different maxact job"):
        run_maxact(gray_model_path, digits_dir, ["relu1"], top=4, out_dir=tmp_path, crops=False)
    run_maxact(gray_model_path, digits_dir, ["relu1"], top=4, out_dir=tmp_path, crops=False, fresh=True)
    assert load_result(tmp_path).record("relu1")["top"] == 4


def test_corrupt_and_missing_files_are_counted_not_fatal(gray_model_path, tmp_path):
    folder = tmp_path / "data"
    good = write_digits(folder, 6)
    (folder / "text.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.bmp").write_bytes(b"")
    (folder / "cut.png").write_bytes(good[0].read_bytes()[:40])
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([str(p.relative_to(tmp_path)) for p in good] + ["data/text.jpg", "# comment", "gone.png"]))
    for data, bad in ((folder, 3), (listing, 2)):
        out = tmp_path / f"out-{data.name}"
        result = run_maxact(gray_model_path, data, ["relu1"], top=3, out_dir=out, shard_size=4, deconv=False)
        assert len(result.skipped) == bad
        assert result.summary["images_used"] == 6
        assert sorted(Path(s["source"]).name for s in result.skipped) == sorted(
            ["text.jpg", "empty.bmp", "cut.png"] if bad == 3 else ["text.jpg", "gone.png"])
        assert result.record("relu1")["images_seen"] == 6


@pytest.mark.parametrize("box,expected_slice", [
    ((-1, -1, 2, 2), (slice(1, 3), slice(1, 3))),  # top-left corner: one padded row and column
    ((3, 4, 8, 8), (slice(0, 3), slice(0, 2))),  # bottom-right: past both edges
    ((1, 1, 4, 5), (slice(0, 3), slice(0, 4))),  # inside
    ((-3, -2, 9, 10), (slice(3, 9), slice(2, 8))),  # larger than the image on every side
])
def test_crops_are_zero_padded_at_borders(box, expected_slice):
    image = np.arange(1, 6 * 6 * 3 + 1, dtype=np.uint8).reshape(6, 6, 3)
    patch = crop_padded(image, box)
    y0, x0, y1, x1 = box
    assert patch.shape == (y1 - y0, x1 - x0, 3)
    inner = np.zeros(patch.shape[:2], bool)
    inner[expected_slice] = True
    assert (patch[~inner] == 0).all()
    assert np.array_equal(patch[expected_slice], image[max(y0, 0):min(y1, 6), max(x0, 0):min(x1, 6)])


def test_border_hits_get_padded_patches(gray_model_path, digits_dir, tmp_path):
    """conv1 is 3x3 with padding 1: a hit in row 0 has a box starting at -1; the montage tile is
    the image crop with a zero row above it."""
    result = run_maxact(gray_model_path, digits_dir, ["relu1"], top=1, out_dir=tmp_path, deconv=False)
    rf = ReceptiveField((3.0, 3.0), (1.0, 1.0), (-1.0, -1.0))
    found = 0
    for unit in result.units("relu1"):
        hit = unit.hits[0]
        assert tuple(hit["box"]) == crop_box(rf, hit["location"], (28, 28))
        if hit["box"][0] < 0 or hit["box"][1] < 0:
            found += 1
        image = cv2.imread(hit["image"], cv2.IMREAD_GRAYSCALE)
        want = np.repeat(np.repeat(crop_padded(image, tuple(hit["box"])), 16, axis=0), 16, axis=1)
        tile = cv2.imread(str(unit.patches), cv2.IMREAD_GRAYSCALE)[:48, :48]
        assert np.abs(tile.astype(int) - want).max() <= 1
    assert found or all(unit.hits[0]["box"][0] >= 0 for unit in result.units("relu1"))


def test_hostile_layer_names_stay_inside_out_dir(tmp_path):
    hostile = ["../../escape:1", "/abs/olute", "..", "a/b/../../../c", "con:"]
    model = make_conv_model(channels=1, size=(28, 28))
    renames = {"relu1": hostile[0], "pool1": hostile[1], "conv2": hostile[2], "relu2": hostile[3], "conv1": hostile[4]}
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    path = tmp_path / "work" / "model.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path))
    write_digits(tmp_path / "work" / "data", 12)
    out = tmp_path / "work" / "deep" / "out"
    out.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))
    result = run_maxact(path, tmp_path / "work" / "data", hostile, top=2, out_dir=out, deconv=True)
    after = sorted(p for p in tmp_path.rglob("*"))
    new = [p for p in after if p not in before]
    assert new and all(out.resolve() in p.resolve().parents for p in new)
    assert set(result.layers) == set(hostile)
    assert len({result.summary["layers"][n] for n in hostile}) == len(hostile)
    for name in hostile:
        assert result.unit(name, 0).patches.is_file()


def test_video_every_nth_frame(gray_model_path, tmp_path):
    digits = mnist_digits()
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (28, 28))
    for n in range(13):
        writer.write(cv2.cvtColor(digits[n], cv2.COLOR_GRAY2BGR))
    writer.release()
    dataset = open_dataset(video, every=3)
    assert [item.frame for item in dataset.items] == [0, 3, 6, 9, 12]
    result = run_maxact(gray_model_path, video, ["relu2"], top=5, every=3, out_dir=tmp_path / "out", shard_size=2,
                        deconv=False)
    frames = sorted(h["frame"] for h in result.unit("relu2", 0).hits)
    assert frames == [0, 3, 6, 9, 12]
    # the frames decoded by the job are the frames of the video (MJPG is lossy: compare to the decoded frame)
    capture = cv2.VideoCapture(str(video))
    decoded = [capture.read()[1] for _ in range(13)]
    capture.release()
    paths = []
    for n, frame in enumerate(decoded[::3]):
        paths.append(tmp_path / f"frame{n}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    acts = reference_activations(gray_model_path, paths, ["relu2"])["relu2"]
    order = expected_top(acts, 5, "max")[0]
    assert [h["frame"] for h in result.unit("relu2", 0).hits] == [3 * i for i in order]
