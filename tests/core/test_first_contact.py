"""First contact: what a new user types, run as written.

- README command 1, exactly as the README prints it, from the root of a fresh clone with its
  relative paths (its own venv, an editable install, the demo on the bundled network);
- then every command of "Examples on the bundled models" that needs no display (the photo
  gathering script included) and the own-model recipe, in that clone, as a shell would;
- the package as a wheel and as `pip install .`, each in a fresh venv outside the repository, where
  `onnxprobe demo` and the help of `demo` and `view` must work from an unrelated folder.

The clone is the working tree as it stands (committed files plus uncommitted changes and untracked,
not ignored files), so the test checks what would land. Only two things differ from a new machine,
both caches, not behaviour: `ONNXPROBE_WHEEL_CACHE` points the gathering script at the suite's
wheel cache (the same pinned wheels), and the own-model recipe's `pip install -e '.[tools]'` (a
several-GB PyTorch download, written in the README's prose) is replaced by making this test
environment's PyTorch (the same pin) visible to the clone's venv through a `.pth` file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WHEEL_CACHE = ROOT / ".cache" / "wheels"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


# ---- the README's own words ----------------------------------------------------------------------

def _section(text: str, heading: str) -> str:
    """The text under a markdown heading (any level), up to the next heading of the same or a higher
    level; lines inside code fences are never headings (a shell comment starts with '#')."""
    lines = text.splitlines(keepends=True)
    start = level = None
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"(#+) (.*?)\s*$", line)
        if match and start is None and match.group(2) == heading:
            start, level = i + 1, len(match.group(1))
        elif match and start is not None and len(match.group(1)) <= level:
            return "".join(lines[start:i])
    assert start is not None, f"README has no section {heading!r}"
    return "".join(lines[start:])


def _bash_blocks(section: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def _commands(block: str) -> list[str]:
    """The block's command lines: comments and blank lines dropped, trailing comments kept (bash ignores them)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def readme_setup_commands() -> list[str]:
    commands = _commands(_bash_blocks(_section(README.read_text(), "Set-up: two commands"))[0])
    assert len(commands) == 2, commands
    return commands


def readme_example_script() -> str:
    """Every example on the bundled models that needs no display, as one script (variables carry over)."""
    blocks = _bash_blocks(_section(README.read_text(), "Examples on the bundled models"))
    assert blocks
    lines = [c for block in blocks for c in _commands(block) if not re.match(r"\s*onnxprobe view\b", c)]
    return "\n".join(lines)


def readme_own_model_script() -> str:
    blocks = _bash_blocks(_section(README.read_text(), "Your own model"))
    assert blocks, "README's own-model recipe has no bash block"
    return "\n".join(_commands(blocks[0]))


# ---- a clone of the working tree, and a clean environment ----------------------------------------

def clone_working_tree(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    diff = subprocess.run(["git", "-C", str(ROOT), "diff", "--binary", "HEAD"], check=True,
                          capture_output=True).stdout
    if diff:
        subprocess.run(["git", "-C", str(dest), "apply", "--whitespace=nowarn", "-"], input=diff, check=True)
    untracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
                               check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, untracked):
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell has: no venv of ours active, no PYTHONPATH, no display."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DISPLAY", "WAYLAND_DISPLAY", "PYTEST_CURRENT_TEST"}}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def run_shell(script: str, cwd: Path, env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, (f"{what} failed with status {result.returncode}\n--- script\n{script}\n"
                                    f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}")
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return result


def borrow_site_packages(venv: Path) -> None:
    """Make this test environment's installed packages (dependencies, PyTorch) importable in `venv`,
    after the venv's own: a .pth line. The editable onnxprobe of this environment is not among them
    (its finder is installed by a .pth file, which a path added this way does not run)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz-borrowed-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


# ---- the tests -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def readme_clone(tmp_path_factory) -> Path:
    """A clone where README command 1 has run exactly as written."""
    clone = clone_working_tree(tmp_path_factory.mktemp("readme") / "onnxprobe")
    command_1 = readme_setup_commands()[0]
    assert "--out onnxprobe-out" in command_1  # the relative output folder that once broke
    result = run_shell(command_1, clone, clean_env(), "README command 1")
    assert "index.html" in result.stdout
    return clone


def test_readme_command_1_as_written(readme_clone):
    out = readme_clone / "onnxprobe-out"
    assert (out / "index.html").is_file() and (out / "summary.png").stat().st_size > 10_000
    pictures = sorted(p.name for p in (out / "classes").glob("*.png"))
    assert pictures, "the demo drew no class pictures"
    page = (out / "index.html").read_text()
    for name in pictures:
        assert f"classes/{name}" in page  # every picture linked from the page under its one name
    assert not list(out.rglob(".onnxprobe-tmp-*"))


def test_readme_examples_as_written(readme_clone):
    env = clean_env(PATH=f"{readme_clone / '.venv' / 'bin'}{os.pathsep}{clean_env()['PATH']}",
                    ONNXPROBE_WHEEL_CACHE=str(WHEEL_CACHE))
    run_shell(readme_example_script(), readme_clone, env, "README's examples on the bundled models")
    for produced in ("acts.npz", "grid.png", "guided.png", "cam.png", "ig.png", "top9", "atlas/index.html",
                     "digits-out/index.html", "digits-atlas/index.html"):
        assert (readme_clone / produced).exists(), produced
    assert list((readme_clone / "vis").rglob("*.png"))


def test_readme_own_model_recipe_as_written(readme_clone):
    pytest.importorskip("torch")
    borrow_site_packages(readme_clone / ".venv")
    run_shell(readme_own_model_script(), readme_clone, clean_env(), "README's own-model recipe")


@pytest.mark.parametrize("how", ["wheel", "pip install ."])
def test_installed_package_carries_the_bundled_network(tmp_path, how):
    clone = clone_working_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    borrow_site_packages(venv)
    python = venv / "bin" / "python"
    if how == "wheel":
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                        str(clone)], check=True, capture_output=True)
        wheel = next((tmp_path / "dist").glob("onnxprobe-*.whl"))
        import zipfile

        names = set(zipfile.ZipFile(wheel).namelist())
        for member in ("onnxprobe/models/imagenet/mobilenet_v2.onnx", "onnxprobe/models/imagenet/mobilenet_v2.onnxprobe.json",
                       "onnxprobe/models/imagenet/mobilenet_v2.labels.txt", "onnxprobe/models/imagenet/samples/chelsea.jpg",
                       "onnxprobe/models/digits/digits-cnn.onnx", "onnxprobe-0.1.0.dist-info/licenses/LICENSE"):
            assert member in names, member
        target = str(wheel)
    else:
        target = str(clone)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", target],
                   check=True, capture_output=True)
    shutil.rmtree(clone)  # nothing may come from the source tree any more
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    env = clean_env()
    located = subprocess.run([str(python), "-c", "import onnxprobe, onnxprobe.resources as r; "
                              "print(onnxprobe.__file__); print(r.default_model())"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(str(venv)) for p in located), located
    onnxprobe = venv / "bin" / "onnxprobe"
    for command in (f"{onnxprobe} demo --help", f"{onnxprobe} view --help"):
        run_shell(command, elsewhere, env, command)
    steps = "" if how == "wheel" else " --steps 0"  # the class pictures once (the wheel); the quick demo for the other
    run_shell(f"{onnxprobe} demo --out out{steps}", elsewhere, env, "onnxprobe demo from an installed package")
    assert (elsewhere / "out" / "index.html").is_file() and (elsewhere / "out" / "summary.png").is_file()
