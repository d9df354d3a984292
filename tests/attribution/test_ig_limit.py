"""Integrated gradients and SmoothGrad with counts no memory holds: refused by the stated limit in one line
(exit 2) before anything is allocated, never a MemoryError (issue 23)."""

from __future__ import annotations

import pytest

from onnxprobe.cli import main
from onnxprobe.limits import MAX_GAUSS_LEGENDRE_POINTS, MAX_QUADRATURE_POINTS
from tests.conftest import DIGITS_MODEL


@pytest.mark.parametrize("rule,limit", [("gausslegendre", MAX_GAUSS_LEGENDRE_POINTS),
                                        ("riemann_middle", MAX_QUADRATURE_POINTS)])
def test_a_billion_steps_are_refused_by_the_stated_limit(tmp_path, capsys, rule, limit):
    image = sorted((DIGITS_MODEL.parent / "samples").iterdir())[0]
    out = tmp_path / "ig.png"
    code = main(["attribute", str(DIGITS_MODEL), str(image), "--method", "integrated_gradients", "--rule", rule,
                 "--steps", "1000000000", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("onnxprobe: error: --steps 1,000,000,000") and f"{limit:,}" in err[0]
    assert not out.exists()


def test_a_billion_smoothgrad_samples_are_refused_by_the_stated_limit(tmp_path, capsys):
    from onnxprobe.limits import MAX_NOISE_SAMPLES

    image = sorted((DIGITS_MODEL.parent / "samples").iterdir())[0]
    code = main(["attribute", str(DIGITS_MODEL), str(image), "--method", "smoothgrad", "--samples", "1000000000",
                 "--out", str(tmp_path / "sg.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("onnxprobe: error: --samples 1,000,000,000"), err
    assert f"{MAX_NOISE_SAMPLES:,}" in err[0]
