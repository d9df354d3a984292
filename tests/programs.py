"""External programs some tests drive (a headless browser, an X server): a test that needs one and
does not find it on PATH is skipped with the reason and how to install it, never failed, so the
README's test command passes on a machine without them (`.ci/run` installs them first)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
XVFB = ("Xvfb",)


def find_program(names: tuple[str, ...]) -> str | None:
    """The path of the first of `names` on PATH, or None."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_program(names: tuple[str, ...], install: str) -> str:
    """The path of the first of `names` on PATH; without any, skip the calling test, saying which
    programs were looked for and `install` (how to get one)."""
    path = find_program(names)
    if path is None:
        pytest.skip(f"needs {' or '.join(names)} on PATH, none found ({install}; .ci/run installs it)")
    return path
