"""The one per-unit resume store of optimize and the atlas (optimize/store.py)."""

from __future__ import annotations

import numpy as np

from onnxprobe.atlas.job import AtlasStore
from onnxprobe.optimize.store import UnitStore, job_key


def test_job_key_is_the_settings_not_their_order():
    assert job_key({"a": 1, "b": [1, 2]}) == job_key({"b": [1, 2], "a": 1})
    assert job_key({"a": 1}) != job_key({"a": 2})


def test_a_unit_is_finished_when_its_record_of_this_job_and_its_files_are_there(tmp_path):
    store = UnitStore(tmp_path, job_key({"seed": 0}))
    record = store.write("conv/1", 3, {"restart00.png": b"png", "restart00.npy": np.zeros((2, 2), np.float32)},
                         {"note": "x"})
    assert record["job"] == store.key and record["stored"] == ["unit_00003_restart00.png", "unit_00003_restart00.npy"]
    assert (store.folder("conv/1") / "unit_00003.json").is_file()
    assert store.record("conv/1", 3)["note"] == "x"
    assert store.pending("conv/1", [1, 3, 5]) == [1, 5]
    assert UnitStore(tmp_path, job_key({"seed": 1})).record("conv/1", 3) is None  # another job's unit is redone
    (store.folder("conv/1") / "unit_00003_restart00.npy").unlink()
    assert store.record("conv/1", 3) is None  # a file is gone: redone
    store.record_path("conv/1", 3).write_text("{not json")
    assert store.record("conv/1", 3) is None


def test_the_atlas_uses_the_same_layout(tmp_path):
    atlas = AtlasStore(tmp_path, "k")
    item = {"layer": "relu2", "unit": 7, "record": {"best_activation": [1.0]},
            "images": {"optimized": b"a", "montage": b"b", "r00": b"c"}}
    written = atlas.write_item(item)
    assert written["files"] == {"restarts": ["units/relu2/unit_00007_r00.png"],
                                "optimized": "units/relu2/unit_00007_optimized.png",
                                "montage": "units/relu2/unit_00007_montage.png"}
    plain = UnitStore(tmp_path / "units", "k")  # what optimize would read there
    assert plain.record("relu2", 7) == written and plain.pending("relu2", [6, 7]) == [6]


def test_new_external_weights_are_another_job(gray_model_path, tmp_path):
    """A model whose weights are in a .onnx.data beside it: new weights there, the .onnx unchanged,
    make another job (its units are redone, not resumed)."""
    import onnx

    from onnxprobe.model import ProbeModel
    from onnxprobe.optimize import RenderSettings
    from onnxprobe.optimize.store import optimize_job

    path = tmp_path / "gray.onnx"
    onnx.save_model(onnx.load(str(gray_model_path)), str(path), save_as_external_data=True,
                    location="gray.onnx.data", size_threshold=0)

    def key():
        model = ProbeModel.load(path, device="cpu")
        return job_key(optimize_job(model, "relu2", "channel", None, RenderSettings.resolve(steps=2)))

    before, onnx_bytes = key(), path.read_bytes()
    data = tmp_path / "gray.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1
    data.write_bytes(bytes(raw))
    assert path.read_bytes() == onnx_bytes and key() != before
