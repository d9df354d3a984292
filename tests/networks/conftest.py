"""Network-level tests: onnxprobe gradient graphs of real architectures against PyTorch.

They run by default; deselect them with ``-m "not networks"``. Each test records its comparisons
through the ``error_table`` fixture, and the table is printed at the end of the session: the error
against float64, the tolerance, PyTorch's own float32 error and how many near-tie decisions the
reference replayed.
"""

from __future__ import annotations

import pytest

_ROWS: list[tuple] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "networks: whole-network gradient checks against PyTorch (torch + torchvision, a few minutes on CPU)"
    )


@pytest.fixture
def error_table(request):
    """``error_table(comparison)`` (a fixtures_torch.Comparison) or ``error_table(what, error,
    tolerance)`` adds a row to the end-of-session summary."""

    def record(what, error: float | None = None, tolerance: float | None = None) -> None:
        if error is None:  # a Comparison
            c = what
            _ROWS.append((request.node.name, c.what, c.error, c.tolerance, c.torch32, c.ties))
            request.node.user_properties.append((c.what, c.error))
            return
        _ROWS.append((request.node.name, what, float(error), float(tolerance), None, None))
        request.node.user_properties.append((what, float(error)))

    return record


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    terminalreporter.section("onnxprobe vs float64 PyTorch: max|ours - ref| / max|ref|")
    width = max(len(t) for t, *_ in _ROWS)
    what_w = max(len(w) for _, w, *_ in _ROWS)
    for test, what, err, tol, t32, ties in _ROWS:
        flag = "ok  " if err <= tol else "FAIL"
        extra = "" if t32 is None else f"  torch f32 {t32:8.1e}  ties {ties}"
        terminalreporter.write_line(f"{flag} {test:<{width}}  {what:<{what_w}} {err:9.2e}  (tol {tol:.1e}){extra}")
