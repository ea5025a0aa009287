"""imgen against a hostile API server (tests/hostile.py): every answer is bounded in memory and in
time, the server never decides how many files land on disk, echoed secrets are masked, and
malformed input of any kind is a clean error with its own exit code, never an internal error."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN
from hostile import (
    HostileServer,
    answer,
    endless,
    gzip_bomb,
    head,
    images_json,
    nested,
    png_b64,
    sse,
    sse_head,
    trickle,
)

MiB = 1 << 20


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, peak_kib: int) -> None:
        self.returncode, self.peak_mib = proc.returncode, peak_kib / 1024
        self.stdout_bytes, self.stderr = proc.stdout, proc.stderr.decode("utf-8", "replace")
        self.stdout = proc.stdout.decode("utf-8", "replace")


# imgen run from a launcher whose only child it is: the launcher's RUSAGE_CHILDREN is imgen's own peak.
LAUNCH = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def run(server: HostileServer | None, *args: str, tmp_path: Path, env: dict | None = None, stdin: bytes | None = None,
        timeout: float = 60) -> Run:
    """The installed imgen, its peak memory measured by the kernel (ru_maxrss, KiB on Linux)."""
    full_env = {**os.environ, "COMETAPI_KEY": API_KEY, "IMGEN_BASE_URL": server.base_url if server else "http://127.0.0.1:9",
                **(env or {})}
    peak_file = tmp_path / f"peak-{os.urandom(4).hex()}"
    try:
        proc = subprocess.run([sys.executable, "-c", LAUNCH, str(peak_file), IMGEN, *args], env=full_env, cwd=tmp_path,
                              input=stdin or b"", capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"imgen ran past {timeout} s: the call has no overall deadline")
    result = Run(proc, int(peak_file.read_text()))
    for stream in (proc.stdout, proc.stderr):
        assert API_KEY.encode() not in stream, "the API key leaked into imgen's output"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def gen(*extra: str, out: Path) -> tuple[str, ...]:
    return ("generate", "-m", "gpt-image-1", "-o", str(out), "--retries", "0", *extra)


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.startswith(".imgen-")]


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


# --- 6: the size of an answer ------------------------------------------------------------------


def test_a_gzip_bomb_stops_early_in_flat_memory(tmp_path, out):
    bomb = gzip_bomb(1024 * MiB)  # 1 GiB of JSON in about 1 MB
    with HostileServer(answer(bomb, headers={"Content-Encoding": "gzip"})) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
    assert res.returncode == 9, res.stderr
    assert "holds more than 16 MiB besides its images" in res.stderr  # the JSON around images is a few KiB
    assert res.peak_mib < 100, f"peak {res.peak_mib:.0f} MiB"
    assert list(out.iterdir()) == []


def test_a_gzip_bomb_inside_an_image_stops_at_the_answer_limit(tmp_path, out):
    bomb = gzip_bomb(1024 * MiB, opening=b'{"data": [{"b64_json": "', filler=b"A")
    with HostileServer(answer(bomb, headers={"Content-Encoding": "gzip"})) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
    assert res.returncode == 9, res.stderr
    assert "larger than the 256 MiB limit (--max-answer)" in res.stderr
    assert res.peak_mib < 100, f"peak {res.peak_mib:.0f} MiB"  # the base64 went to a temporary file, now gone
    assert list(out.iterdir()) == []


def test_the_answer_limit_is_configurable_and_counts_decoded_bytes(tmp_path, out):
    bomb = gzip_bomb(64 * MiB)
    with HostileServer(answer(bomb, headers={"Content-Encoding": "gzip"})) as srv:
        res = run(srv, *gen("a cat", "--max-answer", "8M", out=out), tmp_path=tmp_path)
    assert res.returncode == 9 and "8 MiB limit" in res.stderr
    assert res.peak_mib < 120, f"peak {res.peak_mib:.0f} MiB"


def test_a_plain_answer_longer_than_its_content_length_claims_is_cut_at_the_limit(tmp_path, out):
    # No Content-Length, so the spooling reader takes it: the JSON around the images is what grows.
    endless_json = endless(head(200) + b'{"data": [], "pad": "', b"a" * MiB)
    with HostileServer(endless_json) as srv:
        res = run(srv, *gen("a cat", "--max-answer", "8M", out=out), tmp_path=tmp_path)
    assert res.returncode == 9 and "8 MiB limit" in res.stderr
    assert res.peak_mib < 150, f"peak {res.peak_mib:.0f} MiB"


def test_an_sse_line_without_end_is_cut_at_the_event_limit(tmp_path, out):
    line = endless(sse_head() + b"event: image_generation.partial_image\ndata: {\"b64_json\": \"", b"A" * MiB)
    with HostileServer(line) as srv:
        res = run(srv, *gen("a cat", "--stream", out=out), tmp_path=tmp_path)
    assert res.returncode == 9, res.stderr
    assert "event larger than 128 MiB" in res.stderr  # a 1 GiB line is never held whole
    assert res.peak_mib < 250, f"peak {res.peak_mib:.0f} MiB"


def test_an_error_body_is_read_only_so_far(tmp_path, out):
    with HostileServer(endless(head(500, {"Content-Type": "text/html"}), b"<p>" * 100_000)) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
    assert res.returncode == 8 and "500" in res.stderr
    assert res.peak_mib < 120


# --- 7: the time of a call -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["body", "status line"])
def test_a_trickled_answer_ends_at_max_time(tmp_path, out, where):
    body = images_json(1)
    if where == "body":
        script = trickle(head(200, length=len(body)), body, every=1.0)
    else:
        script = trickle(b"", head(200, length=len(body)) + body, every=1.0)
    with HostileServer(script) as srv:
        res = run(srv, *gen("a cat", "--timeout", "5", "--max-time", "3", out=out), tmp_path=tmp_path, timeout=40)
    assert res.returncode == 7, res.stderr
    assert "longer than 3 s (--max-time)" in res.stderr
    assert len(srv.requests) == 1  # a billed call is not sent again


def test_keep_alive_comments_do_not_keep_a_stream_open_past_max_time(tmp_path, out):
    with HostileServer(endless(sse_head(), b": keep-alive\n\n", every=0.2)) as srv:
        res = run(srv, *gen("a cat", "--stream", "--max-time", "3", out=out), tmp_path=tmp_path, timeout=40)
    assert res.returncode != 0
    assert "--max-time" in res.stderr
    assert list(out.iterdir()) == []


def test_endless_partial_images_save_only_those_asked_for(tmp_path, out):
    partial = sse("image_generation.partial_image", {"type": "image_generation.partial_image", "b64_json": png_b64("p")})

    def script(request, send):
        send(sse_head())
        for index in range(60):
            send(partial.replace(b'"b64_json"', b'"partial_image_index": %d, "b64_json"' % index))
        send(sse("image_generation.completed", {"type": "image_generation.completed", "b64_json": png_b64("final")}))

    with HostileServer(script) as srv:
        res = run(srv, *gen("a cat", "--stream", "--partials", "2", "--save-partials", out=out), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    assert len([n for n in names if ".partial-" in n]) == 2, names
    assert len(names) == 3
    assert "ignored 58 partial images" in res.stderr


# --- 5: the server does not decide how many images are saved ------------------------------------


def test_two_thousand_items_for_one_image_save_one(tmp_path, out):
    with HostileServer(answer(images_json(2000))) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(list(out.iterdir())) == 1 and len(res.stdout.split()) == 1
    assert "returned 2000 images where 1 was asked for" in res.stderr
    assert leftovers(out) == []


def test_two_thousand_items_without_content_length_leave_no_spooled_files(tmp_path, out):
    big = json.dumps({"data": [{"b64_json": base64.b64encode(b"\x89PNG" + bytes(3 * MiB)).decode()} for _ in range(3)]}).encode()

    def script(request, send):
        send(head(200) + big)  # no Content-Length: every image is spooled to a temporary file

    with HostileServer(script) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
    assert res.returncode == 9  # the one kept is not an image: it fails, and nothing is left behind
    assert leftovers(out) == [] and list(out.iterdir()) == []


def test_fifty_completed_stream_events_save_one(tmp_path, out):
    def script(request, send):
        send(sse_head())
        for index in range(50):
            send(sse("image_generation.completed", {"type": "image_generation.completed", "b64_json": png_b64(f"c{index}")}))

    with HostileServer(script) as srv:
        res = run(srv, *gen("a cat", "--stream", out=out), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(list(out.iterdir())) == 1
    assert "ignored 49 completed images" in res.stderr


def test_stdout_gets_one_whole_image_however_many_come(tmp_path):
    with HostileServer(answer(images_json(3))) as srv:
        res = run(srv, "generate", "-m", "gpt-image-1", "-o", "-", "a cat", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout_bytes == base64.b64decode(png_b64())


# --- 8: secrets ---------------------------------------------------------------------------------


def test_an_echoed_key_is_masked_on_stderr_and_in_json(tmp_path, out):
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {API_KEY}. You can find your key at ...",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
    with HostileServer(answer(echo, status=401, headers={"x-request-id": f"req-{API_KEY}"})) as srv:
        text = run(srv, *gen("a cat", out=out), tmp_path=tmp_path)
        doc = run(srv, *gen("a cat", "--json", out=out), tmp_path=tmp_path)
    assert text.returncode == 4 and doc.returncode == 4
    masked = f"sk-...{API_KEY[-4:]}"
    assert f"Incorrect API key provided: {masked}" in text.stderr
    assert masked in doc.stdout + doc.stderr  # run() already checked the key itself appears nowhere


# --- 11: clean failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["answer", "stream"])
def test_deeply_nested_json_is_a_bad_response(tmp_path, out, where):
    if where == "answer":
        script, extra = answer(nested(100_000)), ()
    else:
        event = b"event: image_generation.completed\ndata: " + nested(100_000) + b"\n\n"
        script, extra = (lambda request, send: send(sse_head() + event)), ("--stream",)
    with HostileServer(script) as srv:
        res = run(srv, *gen("a cat", *extra, out=out), tmp_path=tmp_path)
    assert res.returncode == 9, res.stderr
    assert "nested deeper than 64 levels" in res.stderr or "not valid JSON" in res.stderr


@pytest.mark.parametrize("param, words", [("x=NaN", "NaN is not a number JSON can carry"), ("x=1e999", "out of range"),
                                          ("x=-Infinity", "not a number JSON can carry"), ("x=" + "[" * 5000 + "]" * 5000, "nested deeper")])
def test_params_json_cannot_carry_are_usage_errors(tmp_path, out, param, words):
    with HostileServer(answer(images_json(1))) as srv:
        res = run(srv, *gen("a cat", "--param", param, out=out), tmp_path=tmp_path)
        assert srv.requests == []
    assert res.returncode == 2 and words in res.stderr


def test_a_config_inf_is_refused_before_sending(tmp_path, out):
    config = tmp_path / "config.toml"
    config.write_text("[profiles.cometapi.params]\nguidance = inf\n")
    with HostileServer(answer(images_json(1))) as srv:
        res = run(srv, *gen("a cat", out=out), tmp_path=tmp_path, env={"IMGEN_CONFIG": str(config)})
        assert srv.requests == []
    assert res.returncode == 2 and "guidance: not a number JSON can carry" in res.stderr


def test_a_prompt_that_is_not_utf8_is_a_usage_error(tmp_path, out):
    with HostileServer(answer(images_json(1))) as srv:
        argv = subprocess.run([IMGEN, *gen(out=out), os.fsdecode(b"a \xff cat")], capture_output=True, cwd=tmp_path,
                              env={**os.environ, "COMETAPI_KEY": API_KEY, "IMGEN_BASE_URL": srv.base_url})
        piped = run(srv, *gen("-", out=out), tmp_path=tmp_path, stdin=b"a \xfe cat")
        assert srv.requests == []
    assert argv.returncode == 2 and b"PROMPT is not valid UTF-8 (byte 0xff" in argv.stderr
    assert piped.returncode == 2 and "the prompt on stdin is not valid UTF-8 (byte 0xfe at offset 2)" in piped.stderr


@pytest.mark.parametrize("flag, value", [("--timeout", "1e10"), ("--max-time", "1e308"), ("--timeout", "inf")])
def test_huge_timeouts_are_usage_errors(tmp_path, out, flag, value):
    res = run(None, *gen("a cat", flag, value, out=out), tmp_path=tmp_path)
    assert res.returncode == 2, res.stderr
    assert flag in res.stderr


def test_a_huge_timeout_in_the_config_is_a_config_error(tmp_path, out):
    config = tmp_path / "config.toml"
    config.write_text("[profiles.cometapi]\ntimeout = 1e308\n")
    res = run(None, *gen("a cat", out=out), tmp_path=tmp_path, env={"IMGEN_CONFIG": str(config)})
    assert res.returncode == 3 and "timeout" in res.stderr



def test_a_batch_with_a_line_that_is_not_utf8_sends_nothing(tmp_path, out):
    with HostileServer(answer(images_json(1))) as srv:
        res = run(srv, "generate", "-m", "gpt-image-1", "--batch", "-", "-o", str(out), tmp_path=tmp_path, stdin=b"a cat\na \xff dog\n")
        assert srv.requests == []
    assert res.returncode == 2 and "line 2 is not valid UTF-8 (byte 0xff)" in res.stderr


@pytest.mark.parametrize("line, words", [('{"prompt": "x", "a": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 64"),
                                         ('{"prompt": "x", "params": {"g": NaN}}', "NaN is not a number JSON can carry")])
def test_a_batch_line_json_cannot_carry_sends_nothing(tmp_path, out, line, words):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a cat"}\n' + line + "\n")
    with HostileServer(answer(images_json(1))) as srv:
        res = run(srv, "generate", "-m", "gpt-image-1", "--batch", str(jobs), "-o", str(out), tmp_path=tmp_path)
        assert srv.requests == []
    assert res.returncode == 2 and "line 2" in res.stderr and words in res.stderr
