"""Midjourney and Flux end to end: the installed imgen against the test server's task APIs, whose
tasks change state over time; killed while polling and resumed, never paid for twice."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import API_KEY, IMGEN
from fakeserver import FakeServer

FAST = {"IMGEN_POLL_INTERVAL": "0.05"}  # the dialects' own pace (seconds) would make each test wait


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def journal(imgen, *args) -> list[dict]:
    res = imgen("task", "list", "--json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def posts(server, fragment: str) -> list:
    return [r for r in server.requests if r.method == "POST" and fragment in r.path]


class Clock:
    """The server's task clock, which a test moves forward to finish a task it left running."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock(server):
    server.task_clock = clock = Clock()
    return clock


# --------------------------------------------------------------------------- Midjourney


def test_midjourney_grid_saved_after_success_with_its_buttons(imgen, server, outdir):
    res = imgen("generate", "-m", "midjourney", "--aspect", "16:9", "a fox in a misty forest", "-o", str(outdir), env=FAST)
    assert res.returncode == 0, res.stderr
    (submit,) = posts(server, "/mj/submit/imagine")
    assert submit.json == {"prompt": "a fox in a misty forest --ar 16:9", "botType": "MID_JOURNEY"}
    (line,) = [ln for ln in res.stderr.splitlines() if "submitted" in ln]
    task_id = line.split("task ", 1)[1].split()[0]
    assert "buttons (imgen task action" in res.stderr and "U1, U2, U3, U4" in res.stderr
    (path,) = res.lines
    assert sha(path) == server.served[-1]["sha256"]
    assert [d.path for d in server.downloads()] and all("/mj/image/" not in d.path for d in server.downloads())  # never a preview
    fetches = [r for r in server.polls() if r.path == f"/mj/task/{task_id}/fetch"]
    assert len(fetches) >= 3  # "", NOT_START ... IN_PROGRESS ... SUCCESS
    assert server.submit_count("mj") == 1
    (record,) = journal(imgen, "--all")
    assert (record["id"], record["state"], record["model"]) == (task_id, "done", "midjourney")
    assert API_KEY not in json.dumps(record)


def mj_task(imgen, server, outdir, *extra) -> str:
    res = imgen("generate", "-m", "midjourney", "a lighthouse", "-o", str(outdir), *extra, env=FAST)
    assert res.returncode == 0, res.stderr
    return journal(imgen, "--all")[0]["id"]


def test_task_action_presses_a_button_of_the_latest_fetch(imgen, server, outdir):
    parent = mj_task(imgen, server, outdir)
    res = imgen("task", "action", parent, "U2", env=FAST)
    assert res.returncode == 0, res.stderr
    (action,) = posts(server, "/mj/submit/action")
    assert action.json["taskId"] == parent and action.json["customId"].startswith("MJ::JOB::upsample::2::")
    assert server.submit_count("mj-action") == 1
    (path,) = res.lines
    assert Path(path).parent == outdir and sha(path) == server.served[-1]["sha256"]
    variation = imgen("task", "action", parent, "V3", "--json", env=FAST)
    assert variation.returncode == 0, variation.stderr
    doc = json.loads(variation.stdout)
    assert doc["images"][0]["sha256"] == server.served[-1]["sha256"] and doc["task_id"] != parent
    assert any(b["label"] for b in doc["buttons"])
    missing = imgen("task", "action", parent, "U9", env=FAST)
    assert missing.returncode == 2 and "has no button 'U9'" in missing.stderr and "U1" in missing.stderr


def test_a_full_queue_is_submitted_again_a_banned_prompt_is_not(imgen, server, outdir):
    server.fault("mj_queue_full")
    res = imgen("generate", "-m", "midjourney", "a cat", "-o", str(outdir), "-v", env=FAST)
    assert res.returncode == 0, res.stderr
    assert len(posts(server, "/mj/submit/imagine")) == 2 and server.submit_count("mj") == 1
    server.fault("mj_banned", word="gore")
    banned = imgen("generate", "-m", "midjourney", "a gore cat", "-o", str(outdir), env=FAST)
    assert banned.returncode == 5 and "banned word 'gore'" in banned.stderr


def test_failure_and_modal_end_the_task(imgen, server, outdir):
    server.fault("mj_failure", reason="Job action restricted")
    res = imgen("generate", "-m", "midjourney", "a cat", "-o", str(outdir), env=FAST)
    assert res.returncode == 5 and "Job action restricted" in res.stderr
    assert journal(imgen, "--all")[0]["state"] == "failed"
    server.fault("mj_modal")
    modal = imgen("generate", "-m", "midjourney", "a cat", "-o", str(outdir), env=FAST)
    assert modal.returncode == 5 and "MODAL" in modal.stderr
    assert list(outdir.iterdir()) == []


def test_a_failed_poll_is_asked_again(imgen, server, outdir):
    server.fault("mj_poll_500", times=2)
    res = imgen("generate", "-m", "midjourney", "a cat", "-o", str(outdir), env=FAST)
    assert res.returncode == 0, res.stderr
    assert server.submit_count("mj") == 1


def test_a_stuck_task_runs_out_of_time_and_stays_in_the_journal(imgen, server, outdir):
    server.fault("mj_stuck")
    res = imgen("generate", "-m", "midjourney", "a cat", "-o", str(outdir), "--task-timeout", "1", env=FAST)
    assert res.returncode == 7 and "was not done after 1s" in res.stderr and "imgen task wait" in res.stderr
    (record,) = journal(imgen)
    assert record["state"] == "submitted"
    shown = imgen("task", "show", record["id"][:8])
    assert shown.returncode == 0 and "IN_PROGRESS" in shown.stdout
    assert imgen("task", "forget", record["id"]).returncode == 0
    assert journal(imgen, "--all") == []


# --------------------------------------------------------------------------- Flux


def test_flux_size_seed_and_the_sample_saved_byte_for_byte(imgen, server, outdir):
    other = FakeServer(api_key=API_KEY).start()
    try:
        server.flux_polling_host = other.base_url  # where polling_url points: never to be asked with the key
        res = imgen("generate", "-m", "flux-pro-1.1", "-s", "1344x768", "--seed", "7", "a desk lamp, studio light", "-o", str(outdir),
                    "--json", env=FAST)
        assert res.returncode == 0, res.stderr
        (submit,) = posts(server, "/flux/v1/flux-pro-1.1")
        assert submit.json == {"prompt": "a desk lamp, studio light", "width": 1344, "height": 768, "seed": 7}
        assert other.requests == []
        assert all(r.path.startswith("/flux/v1/get_result?id=") for r in server.polls())
    finally:
        other.stop()
    doc = json.loads(res.stdout)
    (image,) = doc["images"]
    assert image["sha256"] == server.served[-1]["sha256"] == sha(image["path"]) and image["format"] == "jpeg"


def test_flux_ultra_aspect_and_kontext_edit(imgen, server, outdir, tmp_path):
    res = imgen("generate", "-m", "flux-pro-1.1-ultra", "--aspect", "21:9", "a mountain panorama", "-o", str(outdir), env=FAST)
    assert res.returncode == 0, res.stderr
    assert posts(server, "/flux/v1/flux-pro-1.1-ultra")[0].json == {"prompt": "a mountain panorama", "aspect_ratio": "21:9"}
    photo = tmp_path / "photo.png"
    Image.new("RGB", (512, 512), (10, 120, 200)).save(photo)
    edit = imgen("edit", str(photo), "as a watercolour", "-m", "flux-kontext-pro", "-o", str(outdir), env=FAST)
    assert edit.returncode == 0, edit.stderr
    body = posts(server, "/flux/v1/flux-kontext-pro")[0].json
    assert base64.b64decode(body["input_image"]) == photo.read_bytes()
    assert edit.lines == [str(outdir / "photo-edit-1.jpg")]


def test_flux_moderation_and_errors_say_why(imgen, server, outdir):
    server.fault("flux_moderated_content")
    res = imgen("generate", "-m", "flux-dev", "x", "-o", str(outdir), env=FAST)
    assert res.returncode == 5 and "Content Moderated" in res.stderr
    server.fault("flux_error", message="GPU fell over")
    failed = imgen("generate", "-m", "flux-dev", "x", "-o", str(outdir), env=FAST)
    assert failed.returncode == 8 and "GPU fell over" in failed.stderr
    bad = imgen("generate", "-m", "flux-dev", "-s", "1000x1000", "x")
    assert bad.returncode == 2 and "divisible by 32" in bad.stderr


# --------------------------------------------------------------------------- kill and resume


def start(server, *args, env=None, cwd=None) -> subprocess.Popen:
    full = {**os.environ, "IMGEN_BASE_URL": server.base_url, "COMETAPI_KEY": API_KEY, **FAST, **(env or {})}
    return subprocess.Popen([IMGEN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full, cwd=cwd)


def wait_for(condition, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_killed_while_polling_then_task_wait_saves_it_with_no_new_submit(imgen, server, clock, outdir, how):
    server.mj_timeline = {"done": 3600}  # a task that will not finish by itself while the test waits
    proc = start(server, "generate", "-m", "midjourney", "a fox", "-o", str(outdir))
    wait_for(lambda: len(server.polls()) >= 2)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    (record,) = journal(imgen)
    assert f"imgen task wait {record['id']}" in err.decode() and "still runs at the provider" in err.decode()
    assert out == b"" and list(outdir.iterdir()) == []
    clock.offset = 7200  # the provider finishes it meanwhile
    res = imgen("task", "wait", record["id"][:6], env=FAST)
    assert res.returncode == 0, res.stderr
    (path,) = res.lines
    assert Path(path).parent == outdir and sha(path) == server.served[-1]["sha256"]
    assert server.submit_count() == 1
    assert journal(imgen, "--all")[0]["state"] == "done"


def test_a_batch_killed_mid_poll_is_rerun_without_a_second_submit(imgen, server, clock, outdir, tmp_path):
    server.mj_timeline = {"done": 3600}
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"prompt": f"a fox, take {i}", "model": "flux-pro" if i % 2 else "midjourney"}) + "\n"
                            for i in range(20)))
    server.flux_timeline = {"Processing": 0.1, "Ready": 3600}
    server.flux_result_ttl = 600.0
    proc = start(server, "generate", "--batch", str(jobs), "-o", str(outdir), "-j", "20")
    wait_for(lambda: server.submit_count() == 20)
    wait_for(lambda: len(server.polls()) >= 40)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert not [p for p in outdir.iterdir() if p.suffix in (".png", ".jpg")]
    clock.offset = 3601  # both kinds are done now, and Flux still keeps its results
    res = imgen("generate", "--batch", str(jobs), "-o", str(outdir), "-j", "20", env=FAST, timeout=120)
    assert res.returncode == 0, res.stderr
    assert server.submit_count() == 20  # every job's task was waited for, none paid for again
    assert journal(imgen) == [] and {r["state"] for r in journal(imgen, "--all")} == {"done"}
    assert len([p for p in outdir.iterdir() if p.suffix in (".png", ".jpg")]) == 20
    again = imgen("generate", "--batch", str(jobs), "-o", str(outdir), env=FAST)
    assert again.returncode == 0 and server.submit_count() == 20


def test_a_submit_cut_after_sending_is_never_sent_again(imgen, server, outdir):
    server.fault("reset")
    res = imgen("generate", "-m", "flux-pro-1.1", "a lamp", "-o", str(outdir), env=FAST)
    assert res.returncode == 7 and "the task may exist and be paid for" in res.stderr
    assert len(posts(server, "/flux/v1/")) == 1 and server.polls() == []


def test_waiting_for_a_finished_task_saves_nothing_twice(imgen, server, outdir):
    task_id = mj_task(imgen, server, outdir)
    before = sorted(outdir.iterdir())
    res = imgen("task", "wait", task_id, env=FAST)
    assert res.returncode == 0 and res.lines == [] and "done already" in res.stderr
    assert sorted(outdir.iterdir()) == before and server.polls()[-1].time <= server.downloads()[-1].time
