"""Network-level tests: onnxprobe gradient graphs of real architectures against PyTorch.

They run by default; deselect them with ``-m "not networks"``. Each test records its relative
errors through the ``error_table`` fixture, and the table is printed at the end of the session.
"""

from __future__ import annotations

import pytest

_ROWS: list[tuple[str, str, float, float]] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "networks: whole-network gradient checks against PyTorch (torch + torchvision, a few minutes on CPU)"
    )


@pytest.fixture
def error_table(request):
    """Call ``error_table(what, error, tolerance)`` to add a row to the end-of-session summary."""

    def record(what: str, error: float, tolerance: float) -> None:
        _ROWS.append((request.node.name, what, float(error), float(tolerance)))
        request.node.user_properties.append((what, float(error)))

    return record


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    terminalreporter.section("onnxprobe vs PyTorch: max|ours - torch| / max|torch|")
    width = max(len(t) for t, *_ in _ROWS)
    for test, what, err, tol in _ROWS:
        flag = "ok  " if err <= tol else "FAIL"
        terminalreporter.write_line(f"{flag} {test:<{width}}  {what:<22} {err:9.2e}  (tol {tol:.0e})")
