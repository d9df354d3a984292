"""`onnxprobe maxact`: a run writes records and montages; bad input -> one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from onnxprobe.cli import main


def test_cli_run_writes_records_and_montages(gray_model_path, digits_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["maxact", str(gray_model_path), str(digits_dir), "--layer", "relu1", "--layer", "relu2",
                 "--top", "4", "--out", str(out), "--crops", "--shard-size", "16"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "maxact.json").read_text())
    assert summary["images_used"] == 60 and summary["skipped"] == []
    record = json.loads((out / summary["layers"]["relu2"]).read_text())
    assert record["top"] == 4 and len(record["unit_records"]) == 6
    unit = record["unit_records"][0]
    assert len(unit["hits"]) == 4 and (out / unit["images"]["patches"]).is_file()
    assert "deconv" not in unit["images"]  # only with --deconv
    assert set(unit) >= {"mean", "max", "fire_rate", "hits"}


@pytest.mark.parametrize("args,message", [
    (["{data}missing", "--layer", "relu1"], "dataset not found"),
    (["{data}", "--layer", "nope"], "no layer named 'nope'"),
    (["{data}", "--layer", "relu1", "--top", "0"], "--top must be"),
    (["{data}", "--layer", "relu1", "--top", "-3"], "--top must be"),
    (["{data}", "--layer", "relu1", "--top", "nine"], "invalid int value"),
    (["{data}", "--layer", "relu1", "--top", "99999999"], "--top must be at most"),
    (["{data}", "--layer", "relu1", "--by", "median"], "invalid choice"),
    (["{model}", "--layer", "relu1"], "dataset must be an image folder"),
    (["{data}"], "--layer"),
    (["{data}", "--layer", "relu1", "--every", "0"], "--every must be"),
])
def test_cli_bad_input_one_line_exit_2(gray_model_path, digits_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    argv = ["maxact", str(gray_model_path)] + [a.format(data=str(digits_dir) + ("/" if a == "{data}missing" else ""),
                                                        model=str(gray_model_path)) for a in args] + ["--out", str(out)]
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def _exit_code(argv) -> int:
    """main()'s return value, or the status argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("command", ["maxact", "atlas"])
def test_unreachable_scheduler_is_one_line_exit_2(command, tmp_path, capsys, digits_model_path):
    """Nothing listens on port 1: the connection times out into one line, and nothing is written."""
    from onnxprobe.cli import main

    samples = digits_model_path.parent / "samples"
    out = tmp_path / "out"
    argv = {"maxact": ["maxact", str(digits_model_path), str(samples), "--layer", "relu2"],
            "atlas": ["atlas", str(digits_model_path), "--layer", "relu2", "--steps", "2"]}[command]
    assert main(argv + ["--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("onnxprobe: error: cannot reach the Dask scheduler") and "\n" not in err
    assert not out.exists()  # no job files and no empty folder: nothing was done (issue #13)
