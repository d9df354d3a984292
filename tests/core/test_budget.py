"""The memory budget (onnxprobe.budget, issue 23): sizes, the default from the memory there is, rows per
run from the model's own tensor sizes, and the one-line errors of a budget below one row or a bad flag."""

from __future__ import annotations

import pytest

from onnxprobe import budget as budget_mod
from onnxprobe.budget import (BUDGET_FRACTION, FALLBACK_BYTES, GRADIENT_FACTOR, SAFETY_FACTOR, MemoryBudget,
                              default_budget, parse_size)
from onnxprobe.cli import main
from onnxprobe.errors import ParameterError
from onnxprobe.model import ProbeModel
from tests.conftest import DIGITS_MODEL

K, M, G = 1024, 1024 ** 2, 1024 ** 3


@pytest.mark.parametrize("text,value", [("4G", 4 * G), ("512M", 512 * M), ("512m", 512 * M), ("1.5GiB", int(1.5 * G)),
                                        ("64k", 64 * K), ("64KB", 64 * K), ("1048576", 1048576), (" 2 T ", 2 * 1024 * G),
                                        ("100B", 100), (".5M", M // 2)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", "0", "0.1", "1e9", "4 GB extra", "nan", "inf", "iB", "5iB",
                                  "99999999999T"])
def test_bad_sizes_name_the_parameter(text):
    with pytest.raises(ParameterError) as err:
        parse_size(text)
    assert err.value.params == ("memory_budget",)


def test_budget_values():
    assert MemoryBudget.of("1G").bytes == G and MemoryBudget.of("1G").given
    assert MemoryBudget.of(12345).bytes == 12345
    same = MemoryBudget(7, "x")
    assert MemoryBudget.of(same) is same
    for bad in (0, -3, 1.5, True, [1]):
        with pytest.raises(ParameterError):
            MemoryBudget.of(bad)


def test_default_is_the_stated_share_of_the_memory_there_is(monkeypatch):
    monkeypatch.setattr(budget_mod, "host_available", lambda: (10 * G, "MemAvailable"))
    assert default_budget("cpu") == MemoryBudget(int(10 * G * BUDGET_FRACTION), f"{BUDGET_FRACTION:g} of MemAvailable")
    # CUDA: the device's free memory; where the runtime library cannot say, the host's rule
    monkeypatch.setattr(budget_mod, "cuda_free", lambda: 4 * G)
    assert default_budget("cuda").bytes == int(4 * G * BUDGET_FRACTION) and "GPU" in default_budget("cuda").source
    monkeypatch.setattr(budget_mod, "cuda_free", lambda: None)
    assert default_budget("cuda").bytes == int(10 * G * BUDGET_FRACTION)
    monkeypatch.setattr(budget_mod, "host_available", lambda: None)
    assert default_budget("cpu").bytes == FALLBACK_BYTES and "fallback" in default_budget("cpu").source


def test_this_machines_memory_is_read():
    host = budget_mod.host_available()
    assert host is not None and host[0] > 0  # Linux: MemAvailable
    assert default_budget("cpu").bytes == int(host[0] * BUDGET_FRACTION)


@pytest.fixture(scope="module")
def digits():
    return ProbeModel.load(DIGITS_MODEL, device="cpu")


def test_a_row_costs_the_models_batched_tensors(digits):
    # digits-cnn: every tensor that depends on the image, at batch 1, float32 (from the facts' shapes)
    reach = digits.facts.reachable_from(digits.input_name)
    want = sum(4 * int(__import__("numpy").prod([d or 1 for d in info.shape]))
               for name, info in digits.infos.items() if name in reach)
    assert digits.tensor_row_bytes == want > 28 * 28 * 4
    assert digits.row_bytes("forward") == int(want * SAFETY_FACTOR)
    assert digits.row_bytes("gradient") == int(want * GRADIENT_FACTOR * SAFETY_FACTOR)
    assert digits.row_bytes("step") > digits.row_bytes("gradient")


def test_rows_shrink_and_grow_with_the_budget(digits):
    row = digits.row_bytes("gradient")
    rows = []
    for n in (1, 2, 3, 10, 1000):
        model = ProbeModel.load(DIGITS_MODEL, device="cpu", memory_budget=n * row + row // 2)
        rows.append(model.rows_per_run("gradient"))
        assert model.rows_per_run("gradient", limit=2) == min(2, n)
    assert rows == [1, 2, 3, 10, 1000]


def test_a_budget_below_one_row_is_a_parameter_error(digits):
    small = ProbeModel.load(DIGITS_MODEL, device="cpu", memory_budget=digits.row_bytes("gradient") - 1)
    assert small.rows_per_run("forward") >= 1
    with pytest.raises(ParameterError) as err:
        small.rows_per_run("gradient")
    assert err.value.params == ("memory_budget",) and "gradient graph" in str(err.value)


def test_a_default_budget_below_one_row_still_runs_one_row():
    """The default is derived, and the per-row estimate is an over-estimate: one row always runs."""
    from onnxprobe.budget import MemoryBudget

    derived = MemoryBudget(1000, source="MemAvailable")
    assert derived.rows(10**9, "the gradient graph of this model") == 1
    with pytest.raises(ParameterError):
        MemoryBudget(1000).rows(10**9, "the gradient graph of this model")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_budget_below_one_row_is_one_line(tmp_path, capsys):
    image = sorted((DIGITS_MODEL.parent / "samples").iterdir())[0]
    out = tmp_path / "ig.png"
    code = main(["attribute", str(DIGITS_MODEL), str(image), "--method", "integrated_gradients",
                 "--memory-budget", "10K", "--out", str(out)])
    line = _one_line(capsys)
    assert code == 2 and "--memory-budget of 10 KiB" in line and "one row" in line, line
    assert not out.exists()


@pytest.mark.parametrize("command", ["attribute", "optimize", "maxact", "atlas"])
@pytest.mark.parametrize("value", ["lots", "0", "-5M", "4Q"])
def test_cli_flag_parse_errors(command, value, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, str(DIGITS_MODEL), f"--memory-budget={value}"])
    assert done.value.code == 2
    line = _one_line(capsys)
    assert "argument --memory-budget" in line and value in line, line


class _FakeCudart:
    """Stands in for libcudart: cudaMemGetInfo writes through its two pointers and returns a status."""

    def __init__(self, free: int, status: int = 0):
        self.free, self.status = free, status

    def cudaMemGetInfo(self, free, total):  # noqa: N802 (the C name)
        free._obj.value, total._obj.value = self.free, 2 * self.free
        return self.status


def test_cuda_free_reads_cudaMemGetInfo_of_the_first_runtime_that_loads(monkeypatch):
    import ctypes

    tried = []

    def fake_cdll(name, status=0):
        tried.append(name)
        if name != "libcudart.so.12":
            raise OSError(name)
        return _FakeCudart(3 * G, status)

    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    assert budget_mod.cuda_free() == 3 * G
    assert tried == ["libcudart.so.13", "libcudart.so.12"]
    monkeypatch.setattr(ctypes, "CDLL", lambda name: fake_cdll(name, status=2))  # cudaErrorMemoryAllocation etc.
    assert budget_mod.cuda_free() is None
    monkeypatch.setattr(ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
    assert budget_mod.cuda_free() is None


def test_the_api_takes_the_budget():
    from onnxprobe.api.model import load

    model = load(DIGITS_MODEL, device="cpu", memory_budget="1G")
    assert model.probe.memory_budget == MemoryBudget(G)
    with pytest.raises(ParameterError) as err:
        load(DIGITS_MODEL, device="cpu", memory_budget="4 lots")
    assert err.value.params == ("memory_budget",)
