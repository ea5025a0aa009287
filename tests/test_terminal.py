"""Progress display on a real terminal (tmux), and its absence everywhere else."""

import os
import shlex
import subprocess
import time
import uuid

import pytest

from conftest import API_KEY, IMGEN, require_tool

pytestmark = pytest.mark.slow


def _tmux_run(command: str, env: dict[str, str], seconds: float, watch: list[str]) -> tuple[list[str], str]:
    """Run command in a detached tmux pane; return which watched texts were seen while it ran,
    and the final screen."""
    require_tool("tmux", "tmux")
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


def test_a_task_shows_its_state_percent_and_time_beside_the_spinner(server, tmp_path):
    server.mj_timeline = {"NOT_START": 0.1, "SUBMITTED": 0.2, "IN_PROGRESS": 0.4, "done": 3.0}
    out = tmp_path / "out"
    seen, screen = _tmux_run(
        f"{IMGEN} generate -m midjourney 'a fox' -o {out}",
        _env(server, tmp_path, IMGEN_POLL_INTERVAL="0.1", IMGEN_STATE_DIR=str(tmp_path / "state")),
        20,
        ["generating with midjourney… task", "IN_PROGRESS"],
    )
    assert "EXIT=0" in screen, screen
    assert seen == ["generating with midjourney… task", "IN_PROGRESS"], screen
    assert "IN_PROGRESS" not in screen and "submitted" in screen  # the id stays on screen, the progress goes


def test_an_edit_shows_its_upload(server, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (1024, 1024)).save(photo)
    with open(photo, "ab") as f:
        f.write(bytes(40_000_000))  # after IEND: still the same PNG, but a long upload
    server.latency = 1.0
    seen, screen = _tmux_run(
        f"{IMGEN} edit {photo} 'night' -m gpt-image-1 -o {tmp_path / 'out'}",
        _env(server, tmp_path),
        30,
        ["uploading 1 image", "generating with gpt-image-1"],
    )
    assert "EXIT=0" in screen, screen
    # The bar stays (at 100%) until the answer comes, so the server's latency keeps it on screen.
    assert sorted(seen) == ["generating with gpt-image-1", "uploading 1 image"], screen


def test_the_cost_of_a_run_is_the_last_line_on_a_terminal(server, tmp_path):
    out = tmp_path / "out"
    env = _env(server, tmp_path, IMGEN_CACHE_DIR=str(tmp_path / "cache"), IMGEN_DATA_DIR=str(tmp_path / "data"))
    # The price list first, off the terminal: this test is about the last line of a run.
    subprocess.run([IMGEN, "models", "--remote"], env=env, capture_output=True, check=True, timeout=30)
    seen, screen = _tmux_run(f"{IMGEN} generate 'a boat' -o {out}", env, 20, ["imgen: cost:"])
    assert "EXIT=0" in screen, screen
    assert "imgen: cost: ~$0." in screen, screen


def test_the_wait_for_the_api_shows_the_time_it_takes_not_a_stalled_download(server, tmp_path):
    server.latency = 2.5
    seen, screen = _tmux_run(
        f"{IMGEN} generate 'a slow boat' -m gpt-image-1 -o {tmp_path / 'out'}",
        _env(server, tmp_path),
        20,
        ["generating with gpt-image-1… 1s", "generating with gpt-image-1… 2s", "0/?", "bytes"],
    )
    assert "EXIT=0" in screen, screen
    assert "generating with gpt-image-1… 1s" in seen and "generating with gpt-image-1… 2s" in seen, seen
    assert "0/?" not in seen and "bytes" not in seen
