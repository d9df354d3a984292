"""Tests that drive an external program skip, with the reason, where it is missing (README command 2
on a machine without Chromium or Xvfb), and use the program where it is on PATH."""

from __future__ import annotations

import os
import stat

import pytest

from tests.programs import CHROMIUM, XVFB, require_program


def _fake_program(folder, name):
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("names", [CHROMIUM, XVFB])
def test_a_missing_program_skips_with_the_reason(tmp_path, monkeypatch, names):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: none of them is there
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_program(names, "apt-get install -y something")
    reason = str(skipped.value)
    assert all(name in reason for name in names) and "apt-get install -y something" in reason, reason


def test_any_of_the_names_is_found(tmp_path, monkeypatch):
    fake = _fake_program(tmp_path, CHROMIUM[-1])  # only the last candidate, google-chrome-stable
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require_program(CHROMIUM, "apt-get install -y chromium") == os.fspath(fake)
