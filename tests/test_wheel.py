"""The wheel carries the man page and the completion scripts to the places man and the shells
look under an install prefix (hatch shared-data), byte for byte the committed files.

The wheel is built with pip from this checkout. When hatchling is importable (it is in a
development venv) the build uses it directly (--no-build-isolation) and needs no network;
otherwise pip fetches hatchling into an isolated build environment, as `pip install .` does."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SHARED = {
    "share/man/man1/imgen.1": ROOT / "man" / "imgen.1",
    "share/bash-completion/completions/imgen": ROOT / "completions" / "imgen.bash",
    "share/zsh/site-functions/_imgen": ROOT / "completions" / "_imgen",
    "share/fish/vendor_completions.d/imgen.fish": ROOT / "completions" / "imgen.fish",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        command.insert(4, "--no-build-isolation")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("imgen-*.whl")
    return built


def test_wheel_holds_man_page_and_completions(wheel):
    from imgen import __version__

    data = f"imgen-{__version__}.data/data/"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read(f"imgen-{__version__}.dist-info/RECORD").decode()
        for target, source in SHARED.items():
            assert data + target in names, f"{target} is not in the wheel"
            assert data + target in record
            assert zf.read(data + target) == source.read_bytes(), f"{target} differs from {source.relative_to(ROOT)}"
        # Nothing else lands outside the package by accident.
        assert {n for n in names if ".data/" in n} == {data + t for t in SHARED}


def test_installed_prefix_is_where_man_looks(wheel, tmp_path):
    from imgen import __version__

    # Unpacked as an installer does (`NAME.data/data/X` goes to PREFIX/X). Not `pip install
    # --prefix`: pip would first uninstall the imgen of the venv running these tests.
    prefix = tmp_path / "prefix"
    data = f"imgen-{__version__}.data/data/"
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(data):
                target = prefix / name[len(data):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    (prefix / "bin").mkdir()
    for target, source in SHARED.items():
        assert (prefix / target).read_bytes() == source.read_bytes()
    man = shutil.which("man")
    if man is None:
        return  # the files are in place; whether a man(1) finds them is checked where one exists
    # man-db maps each PATH entry's ../share/man into the search path: with the prefix's bin
    # on PATH (an activated venv), `man imgen` finds the page with no MANPATH set.
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    found = subprocess.run([man, "-w", "imgen"], env=env, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(prefix / "share/man/man1/imgen.1"), found.stderr
