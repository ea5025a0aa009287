"""File names through the real saver: test_names.py proves what `render` and `NameReserver`
promise; this proves the saver keeps it when images are committed, one after another or at once,
with and without --overwrite: every image of a run gets its own safe name inside the output
directory, whatever the template, prompt or files already there."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imgen.files import names
from imgen.files.writer import ImageWriter, Session
from test_names import _TEMPLATES, _assert_safe

NOW = dt.datetime(2026, 11, 21, 9, 8, 7)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16 + b"IEND\xaeB`\x82"  # sniffs as a complete PNG


def commit(directory: Path, session: Session, template: str, prompt: str, index: int, overwrite: bool) -> Path:
    with ImageWriter(directory, session=session) as writer:
        writer.write(PNG)
        name_for = lambda ext: names.render(template, prompt=prompt, index=index, ext=ext, model="m", now=NOW)  # noqa: E731
        return writer.commit(name_for, overwrite=overwrite).path


@given(
    template=_TEMPLATES,
    prompt=st.text(max_size=300),
    n=st.integers(min_value=1, max_value=6),
    overwrite=st.booleans(),
    occupied=st.integers(min_value=0, max_value=3),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_saved_names_are_safe_and_distinct(template, prompt, n, overwrite, occupied):
    assume(template.strip())
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "out"
        directory.mkdir()
        # What an earlier run left: the first image's name and some of its -2, -3 successors.
        first = names.render(template, prompt=prompt, index=1, ext="png", model="m", now=NOW)
        stem, ext = names._split_ext(first)
        for k in range(1, occupied + 1):
            (directory / (first if k == 1 else f"{stem}-{k}{ext}")).write_bytes(b"earlier run")
        before = set(os.listdir(directory))

        session = Session()
        paths = [commit(directory, session, template, prompt, i, overwrite) for i in range(1, n + 1)]

        assert len({p.name.casefold() for p in paths}) == n  # never one name for two images
        for path in paths:
            assert path.parent == directory and path.resolve().parent == directory.resolve()
            _assert_safe(path.name, names.NAME_MAX_BYTES)
            assert path.read_bytes() == PNG
        left = set(os.listdir(directory))
        assert not [name for name in left if name.startswith(".imgen-")]
        if not overwrite:
            assert not before & {p.name for p in paths}  # an earlier run's files are never replaced
            assert left == before | {p.name for p in paths}


def test_concurrent_commits_with_one_name_never_collide(tmp_path):
    # A template without {index}, many workers at once, --overwrite: each still gets its own file.
    session = Session()
    barrier = threading.Barrier(8)
    paths: list[Path] = []

    def worker(index: int) -> None:
        barrier.wait()
        paths.append(commit(tmp_path, session, "fixed.{ext}", "p", index, True))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in paths) == sorted(["fixed.png"] + [f"fixed-{k}.png" for k in range(2, 9)])
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


def test_overwrite_replaces_an_earlier_run_but_not_this_one(tmp_path):
    (tmp_path / "fixed.png").write_bytes(b"earlier run")
    session = Session()
    one = commit(tmp_path, session, "fixed.{ext}", "p", 1, True)
    two = commit(tmp_path, session, "fixed.{ext}", "p", 2, True)
    assert one.name == "fixed.png" and one.read_bytes() == PNG  # the earlier file was replaced
    assert two.name == "fixed-2.png"
    later = commit(tmp_path, Session(), "fixed.{ext}", "p", 1, True)  # a new run may replace it again
    assert later.name == "fixed.png"


def test_end_to_end_one_name_for_several_images(imgen, server, outdir):
    (outdir / "fixed.png").write_bytes(b"earlier run")
    res = imgen("generate", "x", "-m", "dall-e-2", "-n", "3", "--name", "fixed.{ext}", "--overwrite", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(set(res.lines)) == 3
    assert sorted(os.listdir(outdir)) == ["fixed-2.png", "fixed-3.png", "fixed.png"]
    assert (outdir / "fixed.png").read_bytes() != b"earlier run"
