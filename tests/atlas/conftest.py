"""Atlas fixtures: small models, a few MNIST digits, and helpers that read an atlas folder back."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.maxact.conftest import write_digits

TEMP_MARK = ".onnxprobe-tmp-"
SAFE_FILE = re.compile(r"^[A-Za-z0-9._-]+$")
# files whose bytes carry timings or zip timestamps: compared by presence only
VOLATILE = re.compile(r"(^|/)(\.maxact/|maxact\.json$)")


@pytest.fixture(scope="session")
def atlas_digits_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("atlas-digits")
    write_digits(folder, 24)
    return folder


def files_of(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_atlas(a: Path, b: Path) -> None:
    """Same set of files; same bytes for everything but timings and zip-stamped job state."""
    fa, fb = files_of(a), files_of(b)
    assert sorted(fa) == sorted(fb)
    differing = [rel for rel in fa if not VOLATILE.search(rel) and fa[rel].read_bytes() != fb[rel].read_bytes()]
    assert differing == []


def assert_all_files_whole(root: Path) -> None:
    """Every non-temporary file is complete: PNGs decode, JSON and npz files parse."""
    for rel, path in files_of(root).items():
        if path.name.startswith(TEMP_MARK):
            continue
        if path.suffix == ".png":
            assert cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED) is not None, rel
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as arrays:
                list(arrays.keys())


class LinkParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs["src"])


def page_refs(page: Path) -> LinkParser:
    parser = LinkParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser
