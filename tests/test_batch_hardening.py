"""`imgen generate --batch` against input that tries to reach past -o DIR, and runs that used to pay
twice or say more than they recorded: job lines and manifest records naming files outside the
output directory, a manifest that is no plain file, two runners on one directory, a manifest that
cannot be appended to, and --max-total-images against answers holding more images than asked."""

import json
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN, interruptible
from imgen.batch import lock, paths
from imgen.batch import runner as batch
from imgen.errors import UsageError
from imgen.results import GenerationResponse, ImageResult
from test_batch_e2e import MANIFEST, images, manifest_records, ndjson, sha256, write_jsonl, write_prompts


def env_for(server, **extra: str) -> dict[str, str]:
    return dict(os.environ, IMGEN_BASE_URL=server.base_url, COMETAPI_KEY=API_KEY, **extra)


def start_imgen(server, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [IMGEN, *args], cwd=cwd, env=env_for(server), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )


def wait_for_requests(server, proc: subprocess.Popen, count: int = 1) -> None:
    """Until the server has seen `count` generation requests: a runner sends only once it holds its lock."""
    deadline = time.monotonic() + 30
    while len(server.api_requests()) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.api_requests()) >= count, proc.communicate(timeout=30)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    for stream in (stdout, stderr):
        assert API_KEY.encode() not in stream
    return proc.returncode, stdout.decode(), stderr.decode()


# --- 1. a job's output and name stay inside -o ----------------------------------------------


def test_job_outputs_leading_out_of_the_output_directory_are_refused_before_anything_is_sent(imgen, server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    escaped = tmp_path / "escaped"
    escaped.mkdir()
    victim = escaped / "victim.png"
    victim.write_bytes(b"an image that is not the batch's")
    home = tmp_path / "home"
    home.mkdir()
    batch_file = write_jsonl(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "fine", "output": "nested/deeper"},
            {"prompt": "climbs out", "output": "../escaped", "name": "victim"},
            {"prompt": "absolute", "output": str(tmp_path / "abs")},
            {"prompt": "home", "output": "~/x"},
            {"prompt": "through a link", "output": "sub/x"},
            {"prompt": "down and up", "output": "a/../../b"},
            {"prompt": "tilde name", "name": "~x"},
        ],
    )
    res = imgen("generate", "--batch", str(batch_file), "-o", str(out), env={"HOME": str(home)})
    assert res.returncode == 2, res.stderr
    assert f'line 2: output "../escaped" is outside the output directory {out}' in res.stderr
    assert f'line 3: output "{tmp_path / "abs"}" is outside the output directory {out} (an absolute path' in res.stderr
    assert f'line 4: output "~/x" is outside the output directory {out}' in res.stderr
    assert f'line 5: output "sub/x" is outside the output directory {out} ({out / "sub"} is a symbolic link to {elsewhere.resolve()})' in res.stderr
    assert f'line 6: output "a/../../b" is outside the output directory {out}' in res.stderr
    assert "line 7: name '~x' must not start with ~" in res.stderr
    assert "line 1:" not in res.stderr and "nothing was sent" in res.stderr
    assert server.requests == []
    assert victim.read_bytes() == b"an image that is not the batch's"
    assert list(elsewhere.iterdir()) == [] and list(home.iterdir()) == [] and list(escaped.iterdir()) == [victim]
    assert not (tmp_path / "abs").exists() and not (tmp_path / "b").exists()
    assert sorted(p.name for p in out.iterdir()) == ["sub"]


def test_job_outputs_inside_the_output_directory_still_work_through_inner_links(imgen, server, tmp_path):
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "inner").symlink_to(out / "real")  # a link that stays inside is no escape
    batch_file = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": "a", "output": "inner/x", "name": "a"}, {"prompt": "b", "output": "new/dir"}])
    res = imgen("generate", "--batch", str(batch_file), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert (out / "real" / "x" / "a.png").exists() and len(images(out / "new" / "dir")) == 1


# --- 2. a manifest record naming a file outside -o -------------------------------------------


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_manifest_record_naming_a_file_outside_is_ignored_and_its_job_runs_again(imgen, server, tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    victims = tmp_path / "victim"
    victims.mkdir()
    secret = victims / "secret.png"
    secret.write_bytes(b"\x89PNG someone else's file")
    (out / "link").symlink_to(victims)
    recorded = {"dotdot": "../victim/secret.png", "absolute": str(secret), "symlink": "link/secret.png"}[kind]
    batch_file = write_prompts(tmp_path / "p.txt", 1)
    dry = imgen("generate", "--batch", str(batch_file), "-o", str(out), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    key = ndjson(dry.stdout)[0]["key"]
    poisoned = {
        "format": 1, "key": key, "line": 1, "status": "ok", "prompt": "prompt number 1", "model": "dall-e-3",
        "images": [{"index": 1, "path": recorded, "sha256": sha256(secret), "bytes": secret.stat().st_size, "format": "png"}],
    }
    (out / MANIFEST).write_text(json.dumps(poisoned) + "\n", encoding="utf-8")

    res = imgen("generate", "--batch", str(batch_file), "-o", str(out), "--sidecar", "--json")
    assert res.returncode == 0, res.stderr
    assert f"{out / MANIFEST} line 1: image path {json.dumps(recorded)} is outside the output directory {out}" in res.stderr
    assert "the record is ignored and its job runs again" in res.stderr
    assert len(server.api_requests()) == 1
    (doc,) = ndjson(res.stdout)
    assert doc["status"] == "ok" and doc["files"]
    assert all(Path(f).resolve().is_relative_to(out.resolve()) and Path(f).parent == out for f in doc["files"])
    assert list(victims.iterdir()) == [secret]  # no secret.png.json beside it
    assert secret.read_bytes() == b"\x89PNG someone else's file"
    # The record the run wrote is trusted next time; the poisoned one still is not.
    server.reset()
    again = imgen("generate", "--batch", str(batch_file), "-o", str(out), "--sidecar")
    assert again.returncode == 0, again.stderr
    assert server.requests == []
    assert list(victims.iterdir()) == [secret]


# --- 3. the manifest is a plain file, never followed -----------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "directory", "fifo"])
def test_a_manifest_that_is_no_plain_file_is_refused_before_anything_is_sent(imgen, server, tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    path = out / MANIFEST
    target = tmp_path / "target.jsonl"
    if kind == "symlink":
        target.write_text("# someone else's file\n", encoding="utf-8")
        path.symlink_to(target)
    elif kind == "dangling-symlink":
        path.symlink_to(target)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    what = {"symlink": f"a symbolic link to {target}", "dangling-symlink": f"a symbolic link to {target}",
            "directory": "a directory", "fifo": "a FIFO (named pipe)"}[kind]
    res = imgen("generate", "--batch", str(write_prompts(tmp_path / "p.txt", 2)), "-o", str(out), timeout=30)
    assert res.returncode == 2, res.stderr
    assert f"the batch manifest {path} is {what}, not a regular file; nothing was sent" in res.stderr
    assert "hint:" in res.stderr and "Traceback" not in res.stderr
    assert server.requests == []
    if kind == "symlink":
        assert target.read_text(encoding="utf-8") == "# someone else's file\n"
    if kind == "dangling-symlink":
        assert not target.exists()


def test_a_manifest_opened_for_appending_is_never_followed(tmp_path):
    """The open itself refuses a link (O_NOFOLLOW), whatever happened after the first check."""
    from imgen.batch import manifest

    target = tmp_path / "target.jsonl"
    (tmp_path / MANIFEST).symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        manifest.Manifest(tmp_path / MANIFEST).open()
    assert not target.exists()
    records, warnings = manifest.read(tmp_path / MANIFEST)
    assert records == {} and "symbolic link" in warnings[0]


# --- 4. one runner per output directory ------------------------------------------------------


def test_a_second_runner_on_the_same_directory_is_refused_and_nothing_is_paid_twice(imgen, server, tmp_path):
    server.latency = 1.0  # ten rounds of two: the first run outlasts the second's start by far
    batch_file = write_prompts(tmp_path / "p.txt", 20)
    out = tmp_path / "out"
    first = start_imgen(server, tmp_path, "generate", "--batch", str(batch_file), "-o", str(out), "-j", "2")
    try:
        wait_for_requests(server, first)
        second = imgen("generate", "--batch", str(batch_file), "-o", str(out), "-j", "2")
    finally:
        server.latency = 0.0
        code, stdout, stderr = finish(first)
    assert second.returncode == 2, second.stderr
    assert f"another imgen batch run (pid {first.pid}) is using the output directory {out}; nothing was sent" in second.stderr
    assert second.stdout == ""
    assert code == 0, stderr
    sent = [r.json["prompt"] for r in server.api_requests()]
    assert len(sent) == 20 and len(set(sent)) == 20
    records = manifest_records(out)
    assert len(records) == 20 and {r["status"] for r in records} == {"ok"}
    assert all(sha256(out / r["images"][0]["path"]) == r["images"][0]["sha256"] for r in records)
    assert len(images(out)) == 20 and len(stdout.splitlines()) == 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_runner_leaves_no_lock_behind(imgen, server, tmp_path, sig):
    server.latency = 1.0
    batch_file = write_prompts(tmp_path / "p.txt", 6)
    out = tmp_path / "out"
    first = start_imgen(server, tmp_path, "generate", "--batch", str(batch_file), "-o", str(out), "-j", "1")
    wait_for_requests(server, first)
    first.send_signal(sig)
    finish(first)
    assert (out / lock.LOCK_NAME).exists()  # the file stays, naming a dead pid; its flock died with the process
    server.latency = 0.0
    res = imgen("generate", "--batch", str(batch_file), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert len(images(out)) == 6


def test_shares_of_one_batch_share_a_directory_but_overlapping_runs_are_refused(imgen, server, tmp_path):
    server.latency = 1.0  # one job a second: the first share runs for many seconds
    batch_file = write_prompts(tmp_path / "p.txt", 30)
    out = tmp_path / "out"
    first = start_imgen(server, tmp_path, "generate", "--batch", str(batch_file), "-o", str(out), "-j", "1", "--shard", "1/2")
    try:
        wait_for_requests(server, first)
        whole = imgen("generate", "--batch", str(batch_file), "-o", str(out))
        thirds = imgen("generate", "--batch", str(batch_file), "-o", str(out), "--shard", "1/3")
        server.latency = 0.0
        other_share = imgen("generate", "--batch", str(batch_file), "-o", str(out), "--shard", "2/2")
    finally:
        server.latency = 0.0
        code, _, stderr = finish(first)
    for refused in (whole, thirds):
        assert refused.returncode == 2, refused.stderr
        assert f"another imgen batch run (pid {first.pid}, shard 1/2) is using the output directory {out}" in refused.stderr
    assert other_share.returncode == 0, other_share.stderr
    assert code == 0, stderr
    sent = [r.json["prompt"] for r in server.api_requests()]
    assert len(sent) == 30 and len(set(sent)) == 30
    assert len(manifest_records(out)) == 30


def test_lock_shares_and_waiting(tmp_path):
    """In one process as between two: flock is held by an open file, not by a process."""
    held = lock.acquire(tmp_path, None)
    with pytest.raises(UsageError, match=rf"another imgen batch run \(pid {os.getpid()}\) is using the output directory {tmp_path}"):
        lock.acquire(tmp_path, None)
    with pytest.raises(UsageError):
        lock.acquire(tmp_path, (2, 2))  # a plain run overlaps every share
    held.release()

    one, two = lock.acquire(tmp_path, (1, 2)), lock.acquire(tmp_path, (2, 2))
    for overlapping in ((1, 2), (1, 3), None):
        with pytest.raises(UsageError, match="shard"):
            lock.acquire(tmp_path, overlapping)
    one.release()
    two.release()

    first = lock.acquire(tmp_path, None)
    told: list[str] = []
    got: list[lock.BatchLock] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(tmp_path, None, wait=True, on_wait=told.append)))
    waiter.start()
    while not told and waiter.is_alive():
        time.sleep(0.01)
    assert got == [] and told == [f"imgen: batch: waiting for the batch run (pid {os.getpid()}) on {tmp_path} to finish"]
    first.release()
    waiter.join(30)
    assert len(got) == 1 and got[0].fd is not None
    got[0].release()


def test_a_lock_file_that_is_a_link_is_refused(tmp_path):
    (tmp_path / lock.LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="symbolic link"):
        lock.acquire(tmp_path, None)
    assert not (tmp_path / "elsewhere").exists()


# --- 5. a path reaches stdout only once its record is written -------------------------------


def limited_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing imgen
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize("json_out", [False, True], ids=["paths", "json"])
def test_a_job_whose_record_cannot_be_written_prints_no_path(imgen, server, tmp_path, json_out):
    batch_file = write_prompts(tmp_path / "p.txt", 3)
    probe = imgen("generate", "--batch", str(batch_file), "-o", str(tmp_path / "probe"), "-j", "1")
    assert probe.returncode == 0, probe.stderr
    sizes = [len(line) + 1 for line in (tmp_path / "probe" / MANIFEST).read_bytes().splitlines()]
    limit = max(sizes) + min(sizes) // 2  # room for one record, not two; an image is far smaller
    out = tmp_path / "out"
    server.reset()
    args = [IMGEN, "generate", "--batch", str(batch_file), "-o", str(out), "-j", "1"] + (["--json"] if json_out else [])
    proc = subprocess.run(args, cwd=tmp_path, env=env_for(server, IMGEN_NO_LOG="1"), capture_output=True, timeout=60,
                          preexec_fn=limited_file_size(limit))
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 10, stderr
    assert stderr.count(f"cannot append to {out / MANIFEST}") == 2
    assert len(server.api_requests()) == 3 and len(images(out)) == 3  # saved, but two are not recorded
    recorded = {str(out / r["images"][0]["path"]) for r in manifest_records(out) if r["status"] == "ok"}
    assert len(recorded) == 1
    if json_out:
        docs = ndjson(stdout)
        assert sorted(d["status"] for d in docs) == ["failed", "failed", "ok"]
        assert {f for d in docs for f in d["files"]} == recorded
        assert all(d["files"] == [] and "cannot append" in d["error"]["message"] for d in docs if d["status"] == "failed")
    else:
        assert set(stdout.splitlines()) == recorded and len(stdout.splitlines()) == 1
    # No torn line was left behind (manifest_records parses every line): the next run redoes the two.
    server.reset()
    again = imgen("generate", "--batch", str(batch_file), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert len(server.api_requests()) == 2 and "not a manifest record" not in again.stderr
    assert len(images(out)) == 3  # made again under the same names


# --- 6. --max-total-images is a hard cap ----------------------------------------------------


def test_max_total_images_caps_what_is_saved_when_the_api_returns_more(imgen, server, tmp_path):
    server.fault("bria_multi_urls", times=4)  # each answer holds two images for the one asked
    batch_file = write_prompts(tmp_path / "p.txt", 4)
    out = tmp_path / "out"
    res = imgen("generate", "--batch", str(batch_file), "-m", "bria", "-o", str(out), "-j", "4", "--max-total-images", "3", "--json")
    assert res.returncode == 10, res.stderr
    assert len(server.api_requests()) == 3
    assert len(images(out)) == 3
    assert sorted(d["status"] for d in ndjson(res.stdout)) == ["left", "ok", "ok", "ok"]
    assert sum(len(r["images"]) for r in manifest_records(out)) == 3
    assert "imgen: warning: line" in res.stderr  # the surplus is said, not silently dropped


def test_max_total_images_counts_the_images_a_job_asks_for_under_the_apis_own_name(imgen, server, tmp_path):
    batch_file = write_jsonl(
        tmp_path / "jobs.jsonl", [{"prompt": "one"}, {"prompt": "three", "params": {"num_results": 3}}, {"prompt": "one more"}]
    )
    out = tmp_path / "out"
    res = imgen("generate", "--batch", str(batch_file), "-m", "bria", "-o", str(out), "-j", "3", "--max-total-images", "2")
    assert res.returncode == 10, res.stderr
    assert [r.json["prompt"] for r in server.api_requests()] == ["one"]  # three images were never paid for
    assert len(images(out)) == 1
    assert "--max-total-images 2 reached: 1 job (1 image) fit; 2 left undone, from line 2 on" in res.stderr


def test_the_budget_is_reserved_before_sending_and_caps_each_answer():
    budget = batch.ImageBudget(5)
    granted: list[int] = []
    threads = [threading.Thread(target=lambda: granted.append(2) if budget.reserve(2) else None) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 4 and budget.left == 1  # never more asked in flight than the budget
    assert batch.ImageBudget(None).reserve(10**6)

    aborted: list[int] = []
    spool = type("Spool", (), {"abort": lambda self: aborted.append(1)})
    items = [ImageResult(0, url="u0"), ImageResult(1, error_code="x"), ImageResult(2, b64_json="AA"), ImageResult(3, spooled=spool())]
    response = GenerationResponse(items=items)
    assert batch.keep_reserved(response, 1) == 2
    assert [i.index for i in response.items] == [0, 1] and aborted == [1]


# --- the path check itself --------------------------------------------------------------------


def test_inside_keeps_paths_within_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "in").symlink_to(root / "real")
    (root / "out").symlink_to(tmp_path)
    (root / "loop").symlink_to(root / "loop")
    assert paths.inside(root, "a/b") == root / "a" / "b"
    assert paths.inside(root, "in/x") == root / "in" / "x"
    assert paths.inside(root, ".") == root / "."
    for bad in ("../x", "/etc", "~", "~/x", "~root/x", "a/../../x", "out/x", "out", "a\0b", "loop/x"):
        with pytest.raises(paths.Outside):
            paths.inside(root, bad)
