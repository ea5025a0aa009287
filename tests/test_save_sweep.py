"""Leftovers of a killed imgen are swept; live or foreign temporary files are not."""

import subprocess
import sys

from imgen import save


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
