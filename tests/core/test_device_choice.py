"""`--device cuda` where no CUDA session starts: one line on stderr, exit 2, nothing written.

The check that decides is `cuda_available()` (a real session on the CUDA provider, because the GPU
wheel lists the provider even without a GPU); it is forced false here so the test means the same
on a machine with a GPU.
"""

from __future__ import annotations

import pytest

from onnxprobe.errors import ProbeError, UsageError
from onnxprobe.runtime import session as session_mod


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(session_mod, "cuda_available", lambda: False)
    assert session_mod.resolve_device("auto") == "cpu"
    assert session_mod.resolve_device("cpu") == "cpu"
    with pytest.raises(ProbeError, match="no usable CUDA device") as info:
        session_mod.resolve_device("cuda")
    assert "--" not in str(info.value)  # the library speaks its own words, not the CLI's flags
    with pytest.raises(UsageError):
        session_mod.resolve_device("tpu")


def test_cli_device_cuda_without_gpu_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    from onnxprobe.cli import main

    monkeypatch.setattr(session_mod, "cuda_available", lambda: False)
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    sample = sorted((root / "models" / "digits" / "samples").iterdir())[0]
    out = tmp_path / "out"
    code = main(["activations", str(root / "models" / "digits" / "digits-cnn.onnx"), str(sample),
                 "--out", str(out), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no usable CUDA device" in err, err
    assert "Traceback" not in err
    assert not out.exists()
