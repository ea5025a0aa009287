"""Leftovers of a killed imgen are swept; a file another live imgen holds never is, whatever its
name says (two containers sharing a volume and a host name see each other's pids as dead)."""

import os
import subprocess
import sys
import time

import pytest

from imgen.files import writer as save

OLD = time.time() - save.STALE_AFTER - 60


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def _leftover(directory, host: str, pid: int, age: float = OLD):
    path = directory / f".imgen-{host}-{pid}-00aa11bb.part"
    path.write_bytes(b"x")
    os.utime(path, (age, age))
    return path


def _sweep(directory) -> None:
    save._swept.discard(directory.absolute())
    save.sweep_stale(directory)


def test_old_unlocked_leftovers_go_from_any_host(tmp_path):
    dead = _dead_pid()
    here, foreign = _leftover(tmp_path, save._HOST, dead), _leftover(tmp_path, "ffffff", dead)
    image = tmp_path / "image.png"
    image.write_bytes(b"x")
    os.utime(image, (OLD, OLD))
    _sweep(tmp_path)
    assert not here.exists() and not foreign.exists()
    assert image.exists()


def test_a_young_leftover_goes_only_when_its_name_says_this_host_and_a_dead_pid(tmp_path):
    """The next run after a SIGKILL sweeps its leftover at once; another host's young unlocked file
    may belong to a live run whose locks do not reach here (NFS), so it waits out STALE_AFTER."""
    now = time.time() - 30
    dead = _dead_pid()
    mine, foreign = _leftover(tmp_path, save._HOST, dead, age=now), _leftover(tmp_path, "ffffff", dead, age=now)
    alive = _leftover(tmp_path, save._HOST, os.getppid(), age=now)
    _sweep(tmp_path)
    assert not mine.exists()
    assert foreign.exists() and alive.exists()


def test_a_file_being_made_or_rewritten_is_not_swept_until_old(tmp_path):
    made = tmp_path / f".imgen-{save._HOST}-{_dead_pid()}-00aa11bb.new"
    made.write_bytes(b"x")
    _sweep(tmp_path)
    assert made.exists()
    os.utime(made, (OLD, OLD))
    _sweep(tmp_path)
    assert not made.exists()


def test_a_symlink_with_a_temporary_name_is_not_followed_or_removed(tmp_path):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"keep")
    link = tmp_path / f".imgen-{save._HOST}-{_dead_pid()}-00aa11bb.part"
    link.symlink_to(victim)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    _sweep(tmp_path)
    assert link.is_symlink() and victim.read_bytes() == b"keep"


CHILD = r"""
import os, sys, time
from pathlib import Path
from imgen.files import writer as save
os.getpid = lambda: int(sys.argv[2])  # another pid namespace: this pid is dead over there
w = save.ImageWriter(Path(sys.argv[1]))
w.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
old = time.time() - save.STALE_AFTER - 60
os.utime(w.tmp, (old, old))  # a download stalled long enough to look abandoned
print(w.tmp, flush=True)
sys.stdin.read()  # hold it until the test is done
w.abort()
"""


def test_a_file_another_live_writer_holds_is_never_swept(tmp_path):
    """The reproduction: same host hash, a pid that is dead here, an old mtime; only the lock
    says it is alive, and the lock is enough."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(_dead_pid())],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = child.stdout.readline().strip()
        assert held and os.path.exists(held)
        assert f"-{save._HOST}-" in held
        _sweep(tmp_path)
        writer = save.ImageWriter(tmp_path)  # what a second run does first
        writer.abort()
        assert os.path.exists(held), "a live run's download was swept"
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert not os.path.exists(held)


def test_the_lock_dies_with_a_killed_writer(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(os.getpid())],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    held = child.stdout.readline().strip()
    child.kill()  # SIGKILL: no cleanup
    child.wait()
    assert os.path.exists(held)
    _sweep(tmp_path)
    assert not os.path.exists(held)


def test_import_needs_no_uname():
    # Windows has no os.uname: the host hash must come from something every platform has.
    code = (
        "import hashlib, os, socket; del os.uname\n"
        "from imgen.files import writer as save\n"
        "assert save._HOST == hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_sweep_without_locks(tmp_path, monkeypatch):
    # Windows has no flock: without a way to tell a live file from a leftover, nothing is removed.
    stale = _leftover(tmp_path, save._HOST, _dead_pid())
    monkeypatch.setattr(save, "fcntl", None)
    _sweep(tmp_path)
    assert stale.exists()


@pytest.mark.parametrize("fail_at", ["verify", "finish"])
def test_a_failed_commit_leaves_no_temporary_file(tmp_path, fail_at):
    writer = save.ImageWriter(tmp_path)
    if fail_at == "verify":
        writer.write(b"not an image at all")
    else:
        writer.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 16 + b"IEND\xaeB`\x82")

        def finish(tmp, rewritten, fmt):
            raise OSError(28, "No space left on device")

        writer.finish = finish
    with pytest.raises(Exception):
        writer.commit(lambda ext: f"x.{ext}")
    assert list(tmp_path.iterdir()) == []
