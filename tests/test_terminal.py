"""Progress display on a real terminal (tmux), and its absence everywhere else."""

import os
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import API_KEY, IMGEN

pytestmark = pytest.mark.slow


def _tmux_run(command: str, env: dict[str, str], seconds: float, watch: list[str]) -> tuple[list[str], str]:
    """Run command in a detached tmux pane; return which watched texts were seen while it ran,
    and the final screen."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it)")
    session = f"imgen-{uuid.uuid4().hex[:8]}"
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shell = f"env {assignments} {command}; echo EXIT=$?; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "40", shell], check=True)
    seen: list[str] = []
    screen = ""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            seen += [w for w in watch if w in screen and w not in seen]
            if "EXIT=" in screen:
                break
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return seen, screen


def _env(server, tmp_path, **extra):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "IMGEN_BASE_URL": server.base_url,
        "COMETAPI_KEY": API_KEY,
        "IMGEN_CONFIG": str(tmp_path / "config.toml"),
    }
    env.update(extra)
    return env


def test_spinner_and_download_bar_on_a_terminal(server, tmp_path):
    server.latency = 1.0
    server.image_bytes = 400_000
    server.fault("dl_slow", rate=200_000)
    out = tmp_path / "out"
    seen, screen = _tmux_run(
        f"{IMGEN} generate 'a slow boat' -o {out}",
        _env(server, tmp_path),
        20,
        ["generating with dall-e-3", "image 1"],
    )
    assert "EXIT=0" in screen, screen
    assert seen == ["generating with dall-e-3", "image 1"], screen
    # The display is transient: the final screen holds only the path.
    assert "generating with" not in screen and str(out) in screen


@pytest.mark.parametrize("extra", [{"CI": "true"}, {"TERM": "dumb"}])
def test_no_progress_under_ci_or_dumb_terminal(server, tmp_path, extra):
    server.latency = 0.8
    seen, screen = _tmux_run(
        f"{IMGEN} generate 'a boat' -o {tmp_path / 'out'}",
        _env(server, tmp_path, **extra, FORCE_COLOR="1"),
        20,
        ["generating with"],
    )
    assert "EXIT=0" in screen, screen
    assert seen == [], screen


def test_stream_partials_show_arriving(server, tmp_path):
    server.stream_interval = 0.4
    seen, screen = _tmux_run(
        f"{IMGEN} generate -m gpt-image-1 --stream --partials 2 --save-partials 'a kite' -o {tmp_path / 'out'}",
        _env(server, tmp_path),
        20,
        ["partial 1/2 of image 1", "partial 2/2 of image 1"],
    )
    assert "EXIT=0" in screen, screen
    assert seen == ["partial 1/2 of image 1", "partial 2/2 of image 1"], screen
    assert len(list((tmp_path / "out").iterdir())) == 3
