"""Leftovers of a killed imgen are swept; live or foreign temporary files are not."""

import subprocess
import sys

from imgen.files import writer as save


def test_sweep_removes_only_dead_local_leftovers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f".imgen-{save._HOST}-{dead.pid}-00aa11bb.part"
        running = tmp_path / f".imgen-{save._HOST}-{live.pid}-00aa11bb.part"
        foreign = tmp_path / f".imgen-ffffff-{dead.pid}-00aa11bb.part"  # another machine's
        image = tmp_path / "image.png"
        for path in (stale, running, foreign, image):
            path.write_bytes(b"x")
        writer = save.ImageWriter(tmp_path)
        writer.abort()
        assert not stale.exists()
        assert running.exists() and foreign.exists() and image.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, foreign.name, image.name])
    finally:
        live.kill()
        live.wait()


def test_import_needs_no_uname():
    # Windows has no os.uname: the host hash must come from something every platform has.
    code = (
        "import hashlib, os, socket; del os.uname\n"
        "from imgen.files import writer as save\n"
        "assert save._HOST == hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_sweep_on_windows(tmp_path, monkeypatch):
    # os.kill(pid, 0) terminates the process on Windows instead of probing it.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".imgen-{save._HOST}-{dead.pid}-00aa11bb.part"
    stale.write_bytes(b"x")
    killed = []
    monkeypatch.setattr(save.os, "kill", lambda pid, sig: killed.append(pid))
    with monkeypatch.context() as m:
        m.setattr(save.os, "name", "nt")
        save.sweep_stale(tmp_path)
    assert killed == [] and stale.exists()
