"""The installed imgen, run as a subprocess against the local test server."""

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY, IMGEN

PROMPT = "A paper boat floating on calm water at sunrise"


def images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir())


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".part") or p.name.startswith(".imgen-")]


# --- the offline placeholder -------------------------------------------------------------


def test_placeholder_needs_no_key_and_no_network(imgen, server, outdir):
    res = imgen("generate", "-m", "placeholder", PROMPT, "-o", str(outdir), key=None, env={"IMGEN_BASE_URL": "http://127.0.0.1:9"})
    assert res.returncode == 0, res.stderr
    today = dt.date.today().isoformat()
    assert res.lines == [str(outdir / f"{today}-a-paper-boat-floating-on-calm-water-1.png")]
    data = Path(res.lines[0]).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(data[16:20], "big") == 1024 and int.from_bytes(data[20:24], "big") == 1024
    assert server.requests == []


def test_placeholder_is_deterministic_and_never_overwrites(imgen, outdir):
    first = imgen("generate", "-m", "placeholder", "-s", "64x32", "-n", "2", "same prompt", "-o", str(outdir))
    second = imgen("generate", "-m", "placeholder", "-s", "64x32", "-n", "2", "same prompt", "-o", str(outdir))
    assert first.returncode == second.returncode == 0
    assert len(set(first.lines + second.lines)) == 4
    a, b = (Path(p).read_bytes() for p in first.lines)
    assert a != b  # index changes the image
    assert [Path(p).read_bytes() for p in first.lines] == [Path(p).read_bytes() for p in second.lines]
    assert second.lines[0].endswith("-same-prompt-3.png") and second.lines[1].endswith("-same-prompt-4.png")  # counting on


def test_placeholder_overwrite_replaces(imgen, outdir):
    first = imgen("generate", "-m", "placeholder", "-s", "16x16", "x", "-o", str(outdir), "--name", "fixed.{ext}")
    second = imgen("generate", "-m", "placeholder", "-s", "16x16", "x", "-o", str(outdir), "--name", "fixed.{ext}", "--overwrite")
    assert first.lines == second.lines == [str(outdir / "fixed.png")]
    assert len(images_in(outdir)) == 1


# --- the OpenAI-compatible path ----------------------------------------------------------


def test_dalle3_url_result_is_downloaded_and_key_stays_with_the_api(imgen, server, outdir):
    res = imgen("generate", PROMPT, "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(res.lines) == 1
    path = Path(res.lines[0])
    assert path.parent == outdir and path.suffix == ".png"
    api = server.api_requests()
    assert len(api) == 1
    # Only what the user set: no defaults the API would apply anyway.
    assert api[0].json == {"model": "dall-e-3", "prompt": PROMPT}
    assert api[0].headers["authorization"] == f"Bearer {API_KEY}"
    downloads = [r for r in server.requests if r.method == "GET" and r.path.startswith("/files/")]
    assert len(downloads) == 1
    assert "authorization" not in downloads[0].headers
    assert hashlib.sha256(path.read_bytes()).hexdigest() in {s["sha256"] for s in server.served}
    assert no_temp_files(outdir)


def test_signed_url_is_used_byte_for_byte(imgen, server, outdir):
    res = imgen("generate", "-m", "doubao-seedream-5-0-260128", "x", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    sent = [r.path for r in server.requests if r.method == "GET"]
    assert sent == [doc["images"][0]["url"].split(server.base_url, 1)[1]]
    assert "%2F" in sent[0] and "&" in sent[0]


def test_b64_results_several_images(imgen, server, outdir):
    res = imgen("generate", "-m", "dall-e-2", "-n", "3", "--response-format", "b64_json", "three boats", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(res.lines) == 3 and len(set(res.lines)) == 3
    assert server.api_requests()[0].json == {"model": "dall-e-2", "prompt": "three boats", "n": 3, "response_format": "b64_json"}
    assert not [r for r in server.requests if r.method == "GET"]
    served = {s["sha256"] for s in server.served}
    for line in res.lines:
        assert hashlib.sha256(Path(line).read_bytes()).hexdigest() in served


def test_gpt_image_json_document(imgen, server, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "--output-format", "jpeg", "-Q", "low", "a cat", "-o", str(outdir), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["model"] == "gpt-image-1"
    assert doc["usage"]["total_tokens"] > 0
    assert doc["output_format"] == "jpeg" and doc["quality"] == "low"
    (image,) = doc["images"]
    assert image["format"] == "jpeg" and image["path"].endswith(".jpg")
    assert image["sha256"] == hashlib.sha256(Path(image["path"]).read_bytes()).hexdigest()
    assert image["bytes"] == Path(image["path"]).stat().st_size
    assert "response_format" not in server.api_requests()[0].json


def test_revised_prompt_in_json(imgen, outdir):
    doc = json.loads(imgen("generate", "a dog", "-o", str(outdir), "--json").stdout)
    assert doc["images"][0]["revised_prompt"]
    assert doc["images"][0]["url"].startswith("http://127.0.0.1")


def test_param_values_are_typed(imgen, server, outdir):
    res = imgen(
        "generate", "-m", "dall-e-2", "x", "-o", str(outdir),
        "--param", "seed=42", "--param", "flag=true", "--param", "label=plain text", "--param", 'opts={"a": [1, 2]}',
    )
    assert res.returncode == 0, res.stderr
    body = server.api_requests()[0].json
    assert body["seed"] == 42 and body["flag"] is True and body["label"] == "plain text" and body["opts"] == {"a": [1, 2]}


# --- prompts ------------------------------------------------------------------------------


def test_prompt_from_stdin(imgen, server, outdir):
    res = imgen("generate", "-", "-o", str(outdir), input="a boat from stdin\n")
    assert res.returncode == 0, res.stderr
    assert server.api_requests()[0].json["prompt"] == "a boat from stdin"


def test_prompt_from_file(imgen, server, outdir, tmp_path):
    (tmp_path / "p.txt").write_text("a boat from a file\n", encoding="utf-8")
    res = imgen("generate", "--prompt-file", str(tmp_path / "p.txt"), "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert server.api_requests()[0].json["prompt"] == "a boat from a file"


@pytest.mark.parametrize("args,stdin", [(["   "], None), (["-"], "  \n"), ([], None)])
def test_empty_prompt_is_a_usage_error(imgen, server, args, stdin):
    res = imgen("generate", *args, input=stdin)
    assert res.returncode == 2
    assert "prompt" in res.stderr
    assert server.requests == []


# --- output targets -----------------------------------------------------------------------


def test_output_to_a_named_file(imgen, outdir):
    res = imgen("generate", "x", "-o", str(outdir / "boat.png"))
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / "boat.png")]


def test_output_to_stdout_writes_raw_bytes(imgen, server):
    res = imgen("generate", "x", "-o", "-")
    assert res.returncode == 0, res.stderr
    assert res.stdout_bytes.startswith(b"\x89PNG")
    assert hashlib.sha256(res.stdout_bytes).hexdigest() in {s["sha256"] for s in server.served}


def test_output_to_stdout_needs_one_image(imgen, server):
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "x", "-o", "-")
    assert res.returncode == 2
    assert "-o -" in res.stderr and server.requests == []


def test_name_template(imgen, outdir):
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "x", "-o", str(outdir), "--name", "{model}-{index}.{ext}")
    assert res.returncode == 0, res.stderr
    assert [Path(p).name for p in res.lines] == ["dall-e-2-1.png", "dall-e-2-2.png"]


def test_bad_name_template_sends_nothing(imgen, server):
    res = imgen("generate", "x", "--name", "{nope}.{ext}")
    assert res.returncode == 2
    assert "--name" in res.stderr and server.requests == []


def test_no_download_prints_urls(imgen, server, outdir):
    res = imgen("generate", "x", "--no-download", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(res.lines) == 1 and res.lines[0].startswith(server.base_url + "/files/")
    assert list(outdir.iterdir()) == []


# --- dry run and keys ---------------------------------------------------------------------


def test_dry_run_sends_nothing_and_masks_the_key(imgen, server):
    res = imgen("generate", "a boat", "-m", "dall-e-2", "-n", "2", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert server.requests == []
    assert f"POST {server.base_url}/v1/images/generations" in res.stdout
    assert "Bearer sk-..." + API_KEY[-4:] in res.stdout
    assert "$COMETAPI_KEY" in res.stdout and "curl" in res.stdout
    assert '"n": 2' in res.stdout


def test_missing_key_says_how_to_set_it(imgen, server):
    res = imgen("generate", "x", key=None)
    assert res.returncode == 4
    assert "COMETAPI_KEY" in res.stderr and "imgen config key set" in res.stderr
    assert server.requests == []


def test_rejected_key(imgen, server):
    res = imgen("generate", "x", key="sk-wrong-key-0000")
    assert res.returncode == 4
    assert "401" in res.stderr and "invalid_api_key" in res.stderr
    assert len(server.api_requests()) == 1
    assert "Traceback" not in res.stderr


# --- faults -------------------------------------------------------------------------------


def test_429_with_retry_after_then_success(imgen, server, outdir):
    server.fault("status", status=429, headers={"Retry-After": "0.2"})
    res = imgen("generate", "x", "-o", str(outdir), "-v")
    assert res.returncode == 0, res.stderr
    assert len(server.api_requests()) == 2
    assert "429" in res.stderr and "retrying" in res.stderr


def test_insufficient_quota_is_not_retried(imgen, server):
    server.fault("insufficient_quota")
    res = imgen("generate", "x")
    assert res.returncode == 6
    assert "insufficient_quota" in res.stderr and "quota" in res.stderr
    assert len(server.api_requests()) == 1


def test_500_then_success(imgen, server, outdir):
    server.fault("status", status=500)
    res = imgen("generate", "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(server.api_requests()) == 2


def test_500_past_the_retry_budget(imgen, server, outdir):
    server.fault("status", times=5, status=500)
    res = imgen("generate", "x", "-o", str(outdir), "--retries", "1")
    assert res.returncode == 8
    assert len(server.api_requests()) == 2
    assert list(outdir.iterdir()) == []


def test_html_error_page(imgen, server):
    server.fault("html", times=3)
    res = imgen("generate", "x")
    assert res.returncode == 8
    assert "HTML" in res.stderr and "Traceback" not in res.stderr


def test_invalid_json(imgen, server, outdir):
    server.fault("invalid_json")
    res = imgen("generate", "x", "-o", str(outdir))
    assert res.returncode == 9
    assert "not JSON" in res.stderr
    assert list(outdir.iterdir()) == []


def test_download_cut_then_retried(imgen, server, outdir):
    server.fault("dl_cut")
    res = imgen("generate", "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len([r for r in server.requests if r.method == "GET"]) == 2
    assert len(images_in(outdir)) == 1 and no_temp_files(outdir)


def test_download_cut_every_time_leaves_nothing(imgen, server, outdir):
    server.fault("dl_cut", times=5)
    res = imgen("generate", "x", "-o", str(outdir))
    assert res.returncode == 9
    assert "cut short" in res.stderr
    assert list(outdir.iterdir()) == []


def test_error_body_served_as_png_is_not_saved(imgen, server, outdir):
    server.fault("dl_error_as_png")
    res = imgen("generate", "x", "-o", str(outdir))
    assert res.returncode == 9
    assert "not an image" in res.stderr
    assert list(outdir.iterdir()) == []


def test_partial_failure_keeps_the_rest(imgen, server, outdir):
    server.fault("item_error", index=1)
    res = imgen("generate", "-m", "dall-e-2", "-n", "3", "x", "-o", str(outdir), "--json")
    assert res.returncode == 10
    doc = json.loads(res.stdout)
    assert [i["index"] for i in doc["images"]] == [1, 3]
    assert doc["errors"][0]["index"] == 2 and doc["errors"][0]["code"] == "OutputImageSensitiveContentDetected"
    assert "OutputImageSensitiveContentDetected" in res.stderr
    assert len(images_in(outdir)) == 2


# --- start-up -----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_startup_imports_stay_light(args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgen", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "httpx" not in imported and "rich.progress" not in imported
    assert imported  # importtime really reported


def test_version(imgen):
    res = imgen("--version")
    assert re.fullmatch(r"imgen \d+\.\d+\.\d+\n", res.stdout)


def test_console_script_and_module_agree():
    module = subprocess.run([sys.executable, "-m", "imgen", "--version"], capture_output=True, text=True)
    script = subprocess.run([IMGEN, "--version"], capture_output=True, text=True)
    assert module.stdout == script.stdout


def test_large_base64_images_stream_to_disk(imgen, server, outdir):
    server.image_bytes = 5 * 1024 * 1024  # over the size read whole: decoded while it arrives
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "--response-format", "b64_json", "x", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    served = {s["sha256"] for s in server.served}
    assert len(res.lines) == 2
    for line in res.lines:
        assert Path(line).stat().st_size == 5 * 1024 * 1024
        assert hashlib.sha256(Path(line).read_bytes()).hexdigest() in served
    assert no_temp_files(outdir)


def test_large_base64_with_one_invalid_image(imgen, server, outdir):
    server.image_bytes = 5 * 1024 * 1024
    server.fault("invalid_b64", index=0)
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "--response-format", "b64_json", "x", "-o", str(outdir))
    assert res.returncode == 10
    assert "invalid base64" in res.stderr
    assert len(images_in(outdir)) == 1 and no_temp_files(outdir)


def test_stdout_target_leaves_no_file_anywhere(imgen, server, tmp_path):
    staging = tmp_path / "tmp"
    staging.mkdir()
    server.image_bytes = 5 * 1024 * 1024  # decoded while it arrives, into the staging directory
    res = imgen("generate", "-m", "dall-e-2", "--response-format", "b64_json", "x", "-o", "-", env={"TMPDIR": str(staging)})
    assert res.returncode == 0, res.stderr
    assert len(res.stdout_bytes) == 5 * 1024 * 1024
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"] and list(staging.iterdir()) == []
    server.fault("stream_json_error")
    res = imgen("generate", "-m", "gpt-image-1", "--stream", "x", "-o", "-", env={"TMPDIR": str(staging)})
    assert res.returncode == 5 and list(staging.iterdir()) == []


@pytest.mark.parametrize(
    "args,words",
    [
        (["x", "-o", "-", "--json"], ("-o -", "--json")),
        (["-m", "doubao-seedream-5-0-260128", "--sequential", "x", "-o", "-"], ("-o -", "can return")),
    ],
)
def test_stdout_target_holds_one_image_only(imgen, server, args, words):
    res = imgen("generate", *args)
    assert res.returncode == 2
    assert all(w in res.stderr for w in words)
    assert server.requests == []


def test_stream_images_of_one_run_never_share_a_name(imgen, server, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "--stream", "-n", "2", "--name", "{slug}.{ext}", "--overwrite", "a cat", "-o", str(outdir))
    assert res.returncode == 0, res.stderr
    assert len(set(res.lines)) == 2 and len(images_in(outdir)) == 2
