"""`imgen generate --batch`: the installed imgen as a subprocess against the local test server."""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN, interruptible

MANIFEST = "imgen-manifest.jsonl"


def write_prompts(path: Path, count: int, prefix: str = "prompt") -> Path:
    path.write_text("".join(f"{prefix} number {i}\n" for i in range(1, count + 1)), encoding="utf-8")
    return path


def write_jsonl(path: Path, objects: list[dict]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg", ".webp"))


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".part") or p.name.startswith(".imgen-")]


def manifest_records(directory: Path) -> list[dict]:
    lines = (directory / MANIFEST).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ndjson(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_imgen(server, cwd: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, IMGEN_BASE_URL=server.base_url, COMETAPI_KEY=API_KEY)
    return subprocess.Popen(
        [IMGEN, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )


# --- input and checks before anything is sent ----------------------------------------------


def test_bad_lines_are_all_named_and_nothing_is_sent(imgen, server, tmp_path):
    batch = tmp_path / "jobs.jsonl"
    batch.write_text(
        '{"prompt": "fine"}\n'
        "# a comment\n"
        '{"prompt": "four boats", "n": 4}\n'
        '{"prompt": "typo", "sise": "1024x1024"}\n'
        '{"prompt": "fine too", "model": "dall-e-2", "n": 2}\n'
        "{not json\n",
        encoding="utf-8",
    )
    res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "out"))
    assert res.returncode == 2, res.stderr
    assert "line 3: -n 4: dall-e-3 makes one image" in res.stderr
    assert "line 4: unknown key 'sise'" in res.stderr and "allowed: prompt, model" in res.stderr
    assert "line 6: not valid JSON" in res.stderr
    assert "line 1:" not in res.stderr and "line 5:" not in res.stderr
    assert server.requests == []
    assert not (tmp_path / "out").exists()


def test_usage_errors(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 3)
    assert imgen("generate", "a prompt", "--batch", str(batch)).returncode == 2
    bad_shard = imgen("generate", "--batch", str(batch), "--shard", "4/3")
    assert bad_shard.returncode == 2 and "--shard '4/3'" in bad_shard.stderr
    assert imgen("generate", "--batch", str(batch), "--shard", "x").returncode == 2
    assert imgen("generate", "x", "--force").returncode == 2
    assert imgen("generate", "--batch", str(batch), "--stream", "-m", "gpt-image-1").returncode == 2
    assert server.requests == []


def test_unwritable_output_fails_before_any_request(imgen, server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    batch = write_prompts(tmp_path / "p.txt", 3)
    res = imgen("generate", "--batch", str(batch), "-o", str(blocker / "images"))
    assert res.returncode == 2, res.stderr  # a usage error: nothing was sent
    assert "not a directory" in res.stderr and "hint:" in res.stderr and "Traceback" not in res.stderr
    assert server.requests == []
    # A job's own directory is checked too, not only the batch's.
    out = tmp_path / "out"
    out.mkdir()
    (out / "taken").write_text("x")
    jsonl = write_jsonl(tmp_path / "j.jsonl", [{"prompt": "fine"}, {"prompt": "blocked", "output": "taken/sub"}])
    res = imgen("generate", "--batch", str(jsonl), "-o", str(out))
    assert res.returncode == 2, res.stderr
    assert server.requests == []
    assert blocker.read_text() == "x" and (out / "taken").read_text() == "x"


# --- concurrency and the shared rate-limit state ----------------------------------------


def test_concurrency_is_bounded_and_reached(imgen, server, tmp_path):
    server.latency = 0.4
    batch = write_prompts(tmp_path / "p.txt", 12)
    res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "out"), "-j", "3")
    assert res.returncode == 0, res.stderr
    assert server.max_in_flight == 3
    assert len(server.api_requests()) == 12 and len(images(tmp_path / "out")) == 12
    assert len(res.lines) == 12 and all(Path(line).exists() for line in res.lines)
    assert "imgen: batch: 12 images saved by 12 jobs, 0 jobs failed, 0 skipped in" in res.stderr


def test_one_429_pauses_the_whole_batch(imgen, server, tmp_path):
    server.latency = 0.5
    server.fault("status", status=429, headers={"Retry-After": "1"})
    batch = write_prompts(tmp_path / "p.txt", 16)
    res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "out"), "-j", "8")
    assert res.returncode == 0, res.stderr
    times = sorted(r.time for r in server.api_requests())
    assert len(times) == 17  # 16 jobs and the one retry
    first, later = times[:8], times[8:]
    # The 429 came back at first[0] + latency and asked for 1 s: nothing started before that was over,
    # although seven jobs finished at the same moment and had eight more waiting (with no shared
    # pause they would have started about 0.5 s after the first request).
    assert min(later) >= first[0] + 0.5 + 0.7, [round(t - first[0], 2) for t in times]


# --- resume, idempotency ------------------------------------------------------------------


def test_rerun_sends_nothing_and_force_regenerates_in_place(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 5)
    out = tmp_path / "out"
    first = imgen("generate", "--batch", str(batch), "-o", str(out))
    assert first.returncode == 0, first.stderr
    names = [p.name for p in images(out)]
    server.reset()
    again = imgen("generate", "--batch", str(batch), "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert server.requests == []
    assert [d["status"] for d in ndjson(again.stdout)] == ["skipped"] * 5
    assert "0 images saved by 0 jobs, 0 jobs failed, 5 skipped" in again.stderr
    forced = imgen("generate", "--batch", str(batch), "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(server.api_requests()) == 5
    assert [p.name for p in images(out)] == names  # replaced under the same names, no -2
    assert len(manifest_records(out)) == 10


def test_a_changed_file_is_made_again(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 3)
    out = tmp_path / "out"
    assert imgen("generate", "--batch", str(batch), "-o", str(out)).returncode == 0
    victim = images(out)[0]
    victim.write_bytes(b"not the image that was recorded")
    server.reset()
    res = imgen("generate", "--batch", str(batch), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert len(server.api_requests()) == 1
    assert res.lines == [str(victim)]
    assert sha256(victim) in {s["sha256"] for s in server.served}


def test_saved_but_unrecorded_job_is_redone_without_duplicates(imgen, server, tmp_path):
    """What a crash between the last file and the manifest line leaves: files, no record, and a
    torn last line. The rerun redoes that job under the same names and keeps the rest."""
    batch = write_prompts(tmp_path / "p.txt", 4)
    out = tmp_path / "out"
    assert imgen("generate", "--batch", str(batch), "-o", str(out)).returncode == 0
    path = out / MANIFEST
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:40], encoding="utf-8")  # torn, no newline
    before = [p.name for p in images(out)]
    server.reset()
    res = imgen("generate", "--batch", str(batch), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert len(server.api_requests()) == 1
    assert [p.name for p in images(out)] == before
    records = manifest_records_tolerant(out)
    assert len({r["key"] for r in records}) == 4
    server.reset()
    assert imgen("generate", "--batch", str(batch), "-o", str(out)).returncode == 0
    assert server.requests == []


def manifest_records_tolerant(directory: Path) -> list[dict]:
    records = []
    for line in (directory / MANIFEST).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killed_batch_resumes_where_it_stopped(server, tmp_path, sig):
    server.latency = 0.5
    server.image_bytes = 2 * 1024 * 1024  # downloads take long enough to be caught in the middle
    batch = write_prompts(tmp_path / "p.txt", 20)
    out = tmp_path / "out"
    proc = start_imgen(server, tmp_path, "generate", "--batch", str(batch), "-o", str(out), "-j", "4")
    deadline = time.monotonic() + 20
    while len(server.api_requests()) < 9 and time.monotonic() < deadline:
        time.sleep(0.02)  # the second wave is in flight, the first wave saved
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 130, stderr
        assert b"interrupted" in stderr and b"run the same command again" in stderr
        assert temp_files(out) == []
    else:
        assert proc.returncode == -signal.SIGKILL
    served = {s["sha256"] for s in server.served}
    done = images(out)
    assert 0 < len(done) < 20
    assert all(sha256(p) in served for p in done)  # whatever has a final name is a whole image
    recorded_before = {r["key"] for r in manifest_records_tolerant(out) if r.get("status") == "ok"}
    requests_before = len(server.api_requests())

    env = dict(os.environ, IMGEN_BASE_URL=server.base_url, COMETAPI_KEY=API_KEY)
    rerun = subprocess.run([IMGEN, "generate", "--batch", str(batch), "-o", str(out), "-j", "4"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(recorded_before)} skipped".encode() in rerun.stderr
    assert len(server.api_requests()) - requests_before == 20 - len(recorded_before)
    assert {r["key"] for r in manifest_records_tolerant(out) if r.get("status") == "ok"} >= recorded_before
    assert len({r["key"] for r in manifest_records_tolerant(out) if r.get("status") == "ok"}) == 20
    final = images(out)
    assert len(final) == 20  # no -2 copies of a job whose files were saved before the kill
    assert temp_files(out) == []  # a SIGKILL's leftovers are swept by the next run
    assert all(sha256(p) in {s["sha256"] for s in server.served} for p in final)
    assert len(rerun.stdout.splitlines()) == 20 - len(recorded_before)


# --- shards and budgets -------------------------------------------------------------------


def test_shards_partition_the_jobs(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 30)
    whole = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "all"), "--json", "-m", "placeholder", "-s", "16x16")
    assert whole.returncode == 0, whole.stderr
    every = {d["key"]: d["line"] for d in ndjson(whole.stdout)}
    assert len(every) == 30
    seen: dict[str, int] = {}
    for i in (1, 2, 3):
        res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / f"shard{i}"), "--json", "--shard", f"{i}/3", "-m", "placeholder", "-s", "16x16")
        assert res.returncode == 0, res.stderr
        mine = {d["key"]: d["line"] for d in ndjson(res.stdout)}
        assert mine and not set(mine) & set(seen)
        seen.update(mine)
        assert len(images(tmp_path / f"shard{i}")) == len(mine)
    assert seen == every


def test_max_total_images_stops_before_going_over(imgen, server, tmp_path):
    batch = write_jsonl(tmp_path / "jobs.jsonl", [{"prompt": f"pair {i}", "n": 2} for i in range(5)])
    res = imgen("generate", "--batch", str(batch), "-m", "dall-e-2", "-o", str(tmp_path / "out"), "--max-total-images", "5", "--json")
    assert res.returncode == 10, res.stderr
    assert len(server.api_requests()) == 2 and len(images(tmp_path / "out")) == 4
    assert [d["status"] for d in ndjson(res.stdout)].count("left") == 3
    assert "--max-total-images 5 reached: 2 jobs (4 images) fit; 3 left undone, from line 3 on" in res.stderr
    more = imgen("generate", "--batch", str(batch), "-m", "dall-e-2", "-o", str(tmp_path / "out"), "--max-total-images", "6")
    assert more.returncode == 0, more.stderr
    assert len(server.api_requests()) == 5 and len(images(tmp_path / "out")) == 10


def test_max_cost_uses_catalog_prices(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 5)
    res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "out"), "--max-cost", "0.10")
    assert res.returncode == 10, res.stderr
    assert len(server.api_requests()) == 2  # dall-e-3 at $0.04 a request: a third would be $0.12
    assert "--max-cost 0.1 reached: 2 jobs (2 images, $0.0800) fit; 3 left undone" in res.stderr
    record = manifest_records(tmp_path / "out")[0]
    assert record["cost_usd"] == 0.04


def test_max_cost_estimates_token_priced_models_from_typical_usage(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 2)
    res = imgen("generate", "--batch", str(batch), "-m", "gpt-image-1", "-Q", "medium", "-o", str(tmp_path / "out"), "--max-cost", "0.05")
    assert res.returncode == 10, res.stderr
    # medium 1024x1024: 1056 output tokens x $40/M = $0.04224, plus ~3 prompt tokens x $5/M: one job fits $0.05, two do not.
    assert len(server.api_requests()) == 1
    assert "--max-cost 0.05 reached: 1 job (1 image, $0.0423) fit; 1 left undone" in res.stderr


def test_max_cost_refuses_models_with_no_known_price(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 2)
    res = imgen("generate", "--batch", str(batch), "-m", "gpt-image-9", "-o", str(tmp_path / "out"), "--max-cost", "1")
    assert res.returncode == 2
    assert "line 1: no price for gpt-image-9 in the catalog" in res.stderr and "cannot be kept" in res.stderr
    assert server.api_requests() == []


# --- per-job options, failures, metadata ----------------------------------------------------


def test_jsonl_jobs_override_command_line_defaults(imgen, server, tmp_path):
    batch = write_jsonl(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "default job"},
            {"prompt": "two dogs", "n": 2, "size": "512x512", "name": "dogs"},
            {"prompt": "a hen", "model": "gpt-image-1", "size": "1024x1024", "response_format": None, "quality": "low", "output_format": "jpeg", "name": "hen.png", "output": "birds"},
            {"prompt": "x", "params": {"user": "batch-7"}, "response_format": "url"},
        ],
    )
    out = tmp_path / "out"
    res = imgen("generate", "--batch", str(batch), "-m", "dall-e-2", "-s", "256x256", "--response-format", "b64_json", "-o", str(out), "-j", "1")
    assert res.returncode == 0, res.stderr
    bodies = [r.json for r in server.api_requests()]
    assert bodies[0] == {"model": "dall-e-2", "prompt": "default job", "size": "256x256", "response_format": "b64_json"}
    assert bodies[1] == {"model": "dall-e-2", "prompt": "two dogs", "n": 2, "size": "512x512", "response_format": "b64_json"}
    # null clears a command-line default the job's model does not take
    assert bodies[2] == {"model": "gpt-image-1", "prompt": "a hen", "size": "1024x1024", "quality": "low", "output_format": "jpeg"}
    assert bodies[3]["user"] == "batch-7" and bodies[3]["response_format"] == "url"
    assert (out / "dogs-1.png").exists() and (out / "dogs-2.png").exists()
    assert (out / "birds" / "hen.jpg").exists()  # the extension comes from the bytes
    assert {r["images"][0]["path"] for r in manifest_records(out)} >= {"dogs-1.png", "birds/hen.jpg"}


def test_failed_job_gives_partial_and_is_retried_next_time(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 4)
    out = tmp_path / "out"
    server.fault("moderation")
    res = imgen("generate", "--batch", str(batch), "-o", str(out), "-j", "1", "--json")
    assert res.returncode == 10, res.stderr
    docs = ndjson(res.stdout)
    failed = [d for d in docs if d["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["line"] == 1 and failed[0]["error"]["exit_code"] == 5
    assert "imgen: error: line 1:" in res.stderr and "1 job failed" in res.stderr
    server.reset()
    again = imgen("generate", "--batch", str(batch), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert len(server.api_requests()) == 1 and len(images(out)) == 4


def test_all_failed_exits_with_the_first_error(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 2)
    server.fault("moderation", times=2)
    res = imgen("generate", "--batch", str(batch), "-o", str(tmp_path / "out"))
    assert res.returncode == 5, res.stderr


def test_sidecars_hold_provenance_and_are_restored(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 2)
    out = tmp_path / "out"
    res = imgen("generate", "--batch", str(batch), "-o", str(out), "--sidecar")
    assert res.returncode == 0, res.stderr
    for image in images(out):
        doc = json.loads((image.parent / (image.name + ".json")).read_text(encoding="utf-8"))
        assert doc["sha256"] == sha256(image)
        assert doc["prompt"].startswith("prompt number") and doc["model"] == "dall-e-3"
        assert doc["revised_prompt"].startswith("A detailed, vivid rendering of:")
        assert doc["url_expires"] == "60 min" and isinstance(doc["created"], int)
        assert "url" not in doc  # signed links are not logged
    victim = images(out)[0]
    (victim.parent / (victim.name + ".json")).unlink()
    server.reset()
    assert imgen("generate", "--batch", str(batch), "-o", str(out), "--sidecar").returncode == 0
    assert server.requests == []
    assert (victim.parent / (victim.name + ".json")).exists()
    assert temp_files(out) == []


def test_batch_from_stdin(imgen, server, tmp_path):
    res = imgen("generate", "--batch", "-", "-o", str(tmp_path / "out"), input="one\n\n# skip\ntwo\n")
    assert res.returncode == 0, res.stderr
    assert len(res.lines) == 2 and len(server.api_requests()) == 2


def test_dry_run_sends_nothing_and_says_what_would_happen(imgen, server, tmp_path):
    batch = write_prompts(tmp_path / "p.txt", 3)
    out = tmp_path / "out"
    assert imgen("generate", "--batch", str(batch), "-o", str(out), "--max-total-images", "1").returncode == 10
    server.reset()
    res = imgen("generate", "--batch", str(batch), "-o", str(out), "--dry-run", "--json", "--max-total-images", "1")
    assert res.returncode == 0, res.stderr
    assert server.requests == []
    assert [(d["line"], d["status"]) for d in ndjson(res.stdout)] == [(1, "skipped"), (2, "run"), (3, "left")]
    assert ndjson(res.stdout)[1]["body"] == {"model": "dall-e-3", "prompt": "prompt number 2"}
