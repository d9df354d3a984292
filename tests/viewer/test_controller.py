"""The Qt-free viewer driven by hand: frames in, panes out, checked against independent references
(ONNX Runtime on a hand-exposed graph for activations, PyTorch autograd for the back maps)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy import ndimage

from onnxprobe.model import ProbeModel
from onnxprobe.viewer.atlas_source import AtlasSource
from onnxprobe.viewer.controller import Viewer
from onnxprobe.viewer.sources import ImageFilesSource, VideoSource
from tests.conftest import make_conv_model
from tests.viewer.conftest import FakeCapture, atlas_color, poll_until, write_atlas, write_video


def reference_activation(model_path, x, name):
    """The tensor `name` for input x, by ONNX Runtime on the model with `name` added as an output."""
    model = onnx.load(str(model_path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([name], {model.graph.input[0].name: x})[0]


def select(viewer, layer: str) -> None:
    viewer.select_layer([entry.name for entry in viewer.state.layers].index(layer))


def start_viewer(model_path, source, **kwargs) -> Viewer:
    return Viewer(ProbeModel.load(model_path, device="cpu"), source, **kwargs).start()


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.onnx"
    make_conv_model(path)
    return path


@pytest.fixture
def still(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), (rng.random((30, 40, 3)) * 255).astype(np.uint8))
    return ImageFilesSource.single(path)


MODELS = [dict(channels=3, size=(20, 24)), dict(channels=1, size=(16, 16)), dict(channels=3, size=(12, 18), nhwc=True)]


@pytest.mark.parametrize("options", MODELS, ids=["rgb-nonsquare", "gray", "nhwc"])
def test_grid_follows_the_frames(tmp_path, options):
    path = tmp_path / "m.onnx"
    make_conv_model(path, **options)
    viewer = start_viewer(path, VideoSource(write_video(tmp_path / "v.avi", frames=12), pace=False))
    try:
        seqs, grids = set(), []
        def enough():
            if viewer.last_forward is not None and viewer.last_forward.frame.seq not in seqs:
                seqs.add(viewer.last_forward.frame.seq)
                grids.append(viewer.state.panes.grid.copy())
            return len(seqs) >= 4
        poll_until(viewer, enough)
        assert any(not np.array_equal(grids[0], g) for g in grids[1:]), "the grid did not change with the frames"
        result = viewer.last_forward
        layer = viewer.model.layer(result.settings.layer)
        ref = reference_activation(path, result.frame.x, layer.name)[0]
        ref = np.moveaxis(ref, layer.channel_axis - 1, 0)  # units first
        # the toolbox's normalisation: the whole layer scaled to 0..255 (no boosts by default)
        expected = (ref - ref.min()) / (ref.max() - ref.min()) * 255
        grid, layout = viewer.state.panes.grid, viewer.state.panes.grid_layout
        scale = layout.tile_h // ref.shape[1]
        for unit in range(layout.count):
            y, x, h, w = layout.tile_rect(unit)
            assert np.abs(grid[y:y + h:scale, x:x + w:scale, 0].astype(float) - expected[unit]).max() <= 1.0
        assert viewer.state.panes.input.shape[2] == 3 and viewer.state.fps > 0
    finally:
        viewer.stop()


def torch_back_map(model_path, x, mode, unit):
    """d/dx of sum(seed * relu2) with seed = relu2's channel `unit` at the position where it is
    largest (others zero; the back pane's default, issue 14), in PyTorch."""
    import torch
    import torch.nn.functional as F
    weights = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in onnx.load(str(model_path)).graph.initializer}
    from tests.fixtures_torch import mode_relu

    relu = lambda v: mode_relu(v, mode)  # noqa: E731
    xt = torch.from_numpy(x).requires_grad_(True)
    h = relu(F.conv2d(xt, weights["w1"], weights["b1"], padding=1))
    h = F.max_pool2d(h, 2)
    out = relu(F.conv2d(h, weights["w2"]))
    seed = torch.zeros_like(out)
    y, x0 = np.unravel_index(int(torch.argmax(out[0, unit])), tuple(out.shape[2:]))
    seed[:, unit, y, x0] = out[:, unit, y, x0].detach()
    (seed * out).sum().backward()
    return xt.grad.numpy()[0].transpose(1, 2, 0)


@pytest.mark.parametrize("mode,key_presses", [("gradient", 1), ("deconv", 2), ("guided", 3)])
def test_back_map_matches_pytorch(tiny, still, mode, key_presses):
    viewer = start_viewer(tiny, still)
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        select(viewer, "relu2")
        for key in "ll" + "n" * key_presses:  # unit 2
            viewer.handle_key(key)
        assert viewer.state.settings().origin == ("relu2", 2) and viewer.state.back_mode == mode
        poll_until(viewer, lambda: viewer.last_back is not None and viewer.last_back.settings.back_mode == mode)
        ref = torch_back_map(tiny, viewer.last_forward.frame.x, mode, 2)
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(viewer.last_back.grad, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
        assert not viewer.state.back_stale
    finally:
        viewer.stop()


def _scale(v):
    """The display scale with outliers clipped: the 95th percentile of the non-zero |values| (issue 14)."""
    a = np.abs(v)
    return np.percentile(a[a > 0], 95)


def _signed(v):
    return np.clip(0.5 + 0.5 * v / _scale(v), 0, 1)


def _unsigned(n):
    return np.clip(n / _scale(n), 0, 1)


FILTER_REFERENCES = {  # back filter -> HxWx3 display in 0..1 from the HxWxC gradient (toolbox definitions)
    "raw": lambda g: _signed(g),
    "gray": lambda g: np.repeat(_signed(g.mean(axis=2))[:, :, None], 3, axis=2),
    "norm": lambda g: np.repeat(_unsigned(np.sqrt((g ** 2).sum(axis=2)))[:, :, None], 3, axis=2),
    "normblur": lambda g: np.repeat(_unsigned(ndimage.gaussian_filter(np.sqrt((g ** 2).sum(axis=2)), 4.0, mode="mirror"))[:, :, None], 3, axis=2),
}


@pytest.mark.parametrize("presses,name", [(0, "raw"), (1, "gray"), (2, "norm"), (3, "normblur")])
def test_back_filters(tiny, still, presses, name):
    viewer = start_viewer(tiny, still)
    try:
        viewer.handle_key("n")
        for _ in range(presses):
            viewer.handle_key("m")
        poll_until(viewer, lambda: viewer.last_back is not None and viewer.last_back.settings.back_filter == name)
        expected = FILTER_REFERENCES[name](viewer.last_back.grad.astype(np.float64))
        assert np.abs(viewer.state.panes.back / 255.0 - expected).max() <= 0.02
    finally:
        viewer.stop()


def test_frozen_origin_and_stale_back_pane(tiny, still):
    viewer = start_viewer(tiny, still)
    try:
        viewer.handle_key("n")
        poll_until(viewer, lambda: viewer.last_back is not None)
        viewer.handle_key("d")
        viewer.handle_key("l")
        viewer.handle_key("o")
        assert viewer.state.settings().origin == ("conv1", 0)
        assert not viewer.state.back_stale  # the origin did not move
        viewer.handle_key("d")  # unfreeze: the origin jumps to relu1:1, the shown map is now stale
        assert viewer.state.back_stale
        poll_until(viewer, lambda: viewer.last_back.settings.origin == ("relu1", 1) and not viewer.state.back_stale)
    finally:
        viewer.stop()


def test_back_diffs_grid(tiny, still):
    viewer = start_viewer(tiny, still)
    try:
        select(viewer, "relu2")
        for key in "ll" "n" "d" "uu" "a":  # origin relu2:2 frozen, grid on pool1, back diffs
            viewer.handle_key(key)
        poll_until(viewer, lambda: viewer.state.panes.diff_grid is not None and viewer.last_back.settings.layer == "pool1")
        grid, layout = viewer.state.panes.diff_grid, viewer.state.panes.diff_layout
        assert layout.count == 4 and grid[..., 2].max() == 0  # only red (negative) and green (positive)
        assert grid[..., :2].max() > 0
    finally:
        viewer.stop()


def test_camera_failure_and_switching_back_to_files(tiny, still):
    capture = FakeCapture(good=6)
    viewer = start_viewer(tiny, still, open_capture=lambda index: capture)
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        viewer.handle_key("c")
        poll_until(viewer, lambda: viewer.last_forward.frame.label == "camera 0")
        poll_until(viewer, lambda: "camera 0 stopped delivering frames" in viewer.state.status_line())
        assert capture.released and viewer.grabber.is_alive()
        viewer.handle_key("c")  # no camera: back to the files
        poll_until(viewer, lambda: viewer.last_forward.frame.label == "still.png")
        viewer.handle_key("c")
        capture.opened = False
        capture.reads = 0
        poll_until(viewer, lambda: "camera 0 cannot be opened" in viewer.state.status_line())
    finally:
        viewer.stop()


def test_pattern_mode_and_unit_visuals(tiny, still, tmp_path):
    atlas = AtlasSource(write_atlas(tmp_path / "atlas", "relu1", 4))
    viewer = start_viewer(tiny, still, atlas=atlas)
    try:
        viewer.handle_key("o")  # relu1
        viewer.handle_key("l")
        viewer.handle_key("l")
        poll_until(viewer, lambda: viewer.last_forward is not None and viewer.last_forward.settings.unit == 2
                   and viewer.last_forward.settings.layer == "relu1")
        visuals = viewer.state.panes.visuals
        assert tuple(visuals[5, 5]) == atlas_color(2, 0)  # the optimized image on top
        viewer.handle_key("s")
        poll_until(viewer, lambda: viewer.last_forward.settings.pattern)
        grid, layout = viewer.state.panes.grid, viewer.state.panes.grid_layout
        for unit in (0, 2, 3):
            y, x, h, w = layout.tile_rect(unit)
            assert tuple(grid[y + h // 2, x + w // 2]) == atlas_color(unit)
        y, x, h, w = layout.tile_rect(1)
        assert tuple(grid[y + h // 2, x + w // 2]) == (24, 24, 24)  # no image for unit 1
    finally:
        viewer.stop()


def test_next_previous_and_resize(tiny, tmp_path):
    for i in range(3):
        image = np.zeros((20, 60, 3), np.uint8)
        image[:, :20] = 255 if i == 1 else 0  # image 1: a white left third
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    viewer = start_viewer(tiny, ImageFilesSource.folder(tmp_path))
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        viewer.handle_key("e")
        poll_until(viewer, lambda: viewer.last_forward.frame.label == "1.png (2/3)")
        cropped = viewer.last_forward.frame.display
        assert cropped.max() == 0  # the centre crop misses the white third
        viewer.handle_key("0")
        poll_until(viewer, lambda: viewer.last_forward.frame.display.max() > 0)
        viewer.handle_key("w")
        viewer.handle_key("w")
        poll_until(viewer, lambda: viewer.last_forward.frame.label == "2.png (3/3)")
    finally:
        viewer.stop()


def test_save_panes(tiny, still, tmp_path):
    viewer = start_viewer(tiny, still, save_dir=tmp_path / "snaps")
    try:
        viewer.handle_key("n")
        poll_until(viewer, lambda: viewer.last_back is not None)
        viewer.handle_key("p")
        viewer.handle_key("p")
        names = sorted(p.name for p in (tmp_path / "snaps").iterdir())
        panes = ("back", "grid", "input", "predictions", "unit")
        assert names == sorted([f"view-000{n}-conv1-0-{p}.png" for n in (1, 2) for p in panes] +
                               ["view-0001-conv1-0.json", "view-0002-conv1-0.json"])
        grid = cv2.imread(str(tmp_path / "snaps" / "view-0001-conv1-0-grid.png"))[:, :, ::-1]
        assert grid.shape == viewer.state.panes.grid.shape and (grid[0, 0] == (255, 255, 0)).all()  # selection
        info = json.loads((tmp_path / "snaps" / "view-0001-conv1-0.json").read_text())
        assert info["settings"]["back_mode"] == "gradient" and len(info["predictions"]) == 5
        assert "saved 6 files" in viewer.state.status_line()
        assert sorted(viewer.current_panes()) == sorted(panes)  # what p writes, besides the window's screenshot
    finally:
        viewer.stop()


@pytest.mark.parametrize("mode,key_presses", [("gradient", 1), ("guided", 3)])
def test_back_pane_costs_one_run(tiny, still, mode, key_presses, monkeypatch):
    """With the back pane on, the grid's activations and the back map come from ONE run of the
    gradient graph (self-seeded), not a forward for the grid plus another for the seed plus the
    gradient graph; the map equals the two-step one (the seed read from a forward: the unit's
    activation where it fires most) bit for bit."""
    viewer = start_viewer(tiny, still)
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        select(viewer, "relu2")
        calls = []
        real = viewer.model.activations
        monkeypatch.setattr(viewer.model, "activations", lambda *a, **k: calls.append(a) or real(*a, **k))
        for key in "ll" + "n" * key_presses:  # unit 2
            viewer.handle_key(key)
        poll_until(viewer, lambda: viewer.last_back is not None and viewer.last_back.settings.back_mode == mode)
        assert calls == []  # no separate forward pass, neither for the grid nor for the seed
        x = viewer.last_forward.frame.x
        act = real(x, ["relu2"], with_outputs=False)["relu2"]
        from onnxprobe.position import strongest

        y, x_ = strongest(viewer.model.layer("relu2"), act, 2)
        seed = np.zeros_like(act)
        seed[0, 2, y, x_] = act[0, 2, y, x_]
        assert seed.any()  # the unit is live there: the comparison is not between two zero maps
        two_step = viewer.model.gradient_session(["relu2"], mode=mode).run(x, {"relu2": seed})["grad"]
        np.testing.assert_array_equal(viewer.last_back.grad, two_step[0].transpose(1, 2, 0))
        np.testing.assert_array_equal(viewer.last_forward.activation, act[0])
    finally:
        viewer.stop()


def test_back_pane_on_video_maps_within_its_share_of_the_forward_time(tiny, video_path, monkeypatch):
    """On a video with the back pane on, the first frames get the back map (one self-seeded run for
    grid and map; the first run, which builds the graph, is not timed), then plain forwards follow
    until they have taken (1 - BACK_SHARE) / BACK_SHARE
    times what the map cost beyond a plain forward: back maps take at most BACK_SHARE of the forward
    worker's time, so the grid keeps near the forward's frame rate. Run times come from a fake clock
    (a plain forward 1 s, a run with the back map 3.5 s), so the verdict is the machine's in nothing."""
    from onnxprobe.viewer import passes

    viewer = Viewer(ProbeModel.load(tiny, device="cpu"), VideoSource(str(video_path), pace=False))
    clock, kinds = [0.0], []
    real_with_back, real_acts = viewer.passes.forward_with_back, viewer.model.activations

    def with_back(*a):
        kinds.append("both")
        clock[0] += 3.5
        return real_with_back(*a)

    def plain(*a, **k):
        kinds.append("plain")
        clock[0] += 1.0
        return real_acts(*a, **k)

    monkeypatch.setattr(passes, "thread_time", lambda: clock[0])
    monkeypatch.setattr(viewer.passes, "forward_with_back", with_back)
    monkeypatch.setattr(viewer.model, "activations", plain)
    viewer.handle_key("n")
    viewer.start()
    try:
        poll_until(viewer, lambda: kinds.count("both") >= 4 and viewer.last_back is not None)
    finally:
        viewer.stop()
    # the first run builds the graph (its time is no map's cost), so the next frame maps again;
    # that map costs 3.5 s beyond no plain forward yet measured, so (1 - 0.15) / 0.15 * 3.5
    # = 19.8 -> 20 plain forwards follow; every later one 2.5 s beyond a plain 1 s: 14.2 -> 15
    assert passes.BACK_SHARE == 0.15
    assert kinds[:38] == ["both"] * 2 + ["plain"] * 20 + ["both"] + ["plain"] * 15, kinds


def test_back_pane_falls_back_to_two_runs_when_one_run_fails(tiny, still, monkeypatch):
    """A self-seeded graph that cannot be built or run does not cost the grid its frame: the
    forward runs plainly, the back worker computes the map the old way, and no retry follows."""
    from onnxprobe.errors import ModelError

    viewer = start_viewer(tiny, still)
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        real = viewer.model.gradient_session
        attempts = []

        def no_self_seeded(*a, **k):
            if k.get("self_seeded"):
                attempts.append(a)
                raise ModelError("no self-seeded graph here")
            return real(*a, **k)

        monkeypatch.setattr(viewer.model, "gradient_session", no_self_seeded)
        viewer.handle_key("n")
        poll_until(viewer, lambda: viewer.last_back is not None)
        viewer.handle_key("m")  # another back filter: same back settings, no second attempt
        poll_until(viewer, lambda: viewer.last_back.settings.back_filter != "raw")
        assert len(attempts) == 1
        assert np.abs(viewer.last_back.grad).max() > 0
    finally:
        viewer.stop()


def test_freeze_stops_the_frames_and_escape_lets_them_run_again(tiny, video_path):
    """`f` is a model change the controller follows (the grabber pauses); Escape resets the modes,
    frame_frozen included, and the grabber follows that too (it used to stay paused)."""
    import time

    viewer = start_viewer(tiny, VideoSource(str(video_path), pace=False))
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        viewer.handle_key("f")
        deadline = time.monotonic() + 0.5  # let a frame already in flight arrive
        while time.monotonic() < deadline:
            viewer.poll()
        frozen_at = viewer.last_forward.frame.seq
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            viewer.poll()
        assert viewer.last_forward.frame.seq == frozen_at and "frozen" in viewer.state.status_line()
        viewer.handle_key("Escape")
        poll_until(viewer, lambda: viewer.last_forward.frame.seq > frozen_at)
    finally:
        viewer.stop()


def test_a_back_map_waits_for_the_grid_of_its_frame(tiny):
    """The grid is drawn on its own thread, so the back map of a frame can arrive first: it is
    shown once the grid shows that frame (same settings) or a later one, never before, and a newer
    back map replaces a waiting one. Results are posted by hand here: no thread, no timing."""
    from onnxprobe.viewer.passes import BackResult, Computed, Frame

    model = ProbeModel.load(tiny, device="cpu")
    viewer = Viewer(model)
    viewer.handle_key("n")  # the back pane on
    settings = viewer.state.settings()
    x = np.zeros(model.input_shape, np.float32)
    acts = model.activations(x, [settings.layer, model.class_output], with_outputs=False)
    frames = [Frame(seq, x, np.zeros((16, 16, 3), np.uint8), "") for seq in (1, 2, 3)]
    back = {f.seq: BackResult(f, settings, None, {"back": np.full((4, 4, 3), f.seq, np.uint8)}) for f in frames}
    computed = {f.seq: Computed(f, settings, acts, None) for f in frames}

    def show_grid(seq):
        viewer.slots.post("forward", viewer.passes.draw(computed[seq])[0])

    viewer.slots.post("back", back[1])
    viewer.poll()
    assert viewer.last_back is None  # no grid yet
    show_grid(1)
    viewer.poll()
    assert viewer.last_back is back[1]
    viewer.slots.post("back", back[2])
    viewer.poll()
    assert viewer.last_back is back[1]  # frame 2's grid is not shown yet
    viewer.slots.post("back", back[3])  # a newer map replaces the waiting one
    show_grid(3)
    viewer.poll()
    assert viewer.last_back is back[3]
    show_grid(3)
    viewer.poll()
    assert viewer.last_back is back[3]  # nothing left waiting: frame 2's map was never shown


def test_pictures_from_the_frame_run_beside_the_frames(tiny, video_path):
    """`r` starts the accentuation of the selected unit on the frame shown, on the optimize worker:
    frames keep arriving while it runs; again: the layer's caricature, its inversion, then off."""
    viewer = start_viewer(tiny, VideoSource(str(video_path), pace=False))
    try:
        poll_until(viewer, lambda: viewer.last_forward is not None)
        viewer.handle_key("l")  # unit 1
        viewer.handle_key("r")
        started = viewer.last_forward.frame
        picture = viewer._optimization
        assert picture.x is started.x and (picture.kind, picture.unit) == ("accentuate", 1)
        newer_while_running = []

        def shown():
            progress = viewer.state.panes.picture
            if progress is not None and progress.step < progress.steps and viewer.last_forward.frame.seq > started.seq:
                newer_while_running.append(progress.step)
            return bool(newer_while_running)

        poll_until(viewer, shown)
        views = viewer.state.pane_views()
        assert views["visuals"].visible and views["visuals"].title.startswith(f"accentuation of {viewer.state.layer.label}:1")
        for kind, words in (("caricature", "caricature of"), ("invert", "inversion from")):
            viewer.handle_key("r")
            poll_until(viewer, lambda: viewer.state.panes.picture is not None and viewer.state.panes.picture.kind == kind)
            assert viewer.state.pane_views()["visuals"].title.startswith(f"{words} {viewer.state.layer.label} from the frame")
        viewer.handle_key("r")
        assert viewer._optimization is None and viewer.state.picture == "off"
        assert "picture from the frame stopped" in viewer.state.status_line()
    finally:
        viewer.stop()
