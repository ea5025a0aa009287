"""Invalid invocations of `imgen generate`: each is refused with its documented exit code (2 for
usage, 3 for configuration) and a message naming the flag and what is allowed, before anything
is sent: the local server must record no request at all.

The matrix runs in process (Typer's CliRunner) so sixty-odd cases cost a second; a few rows are
replayed through the installed command to show it behaves the same.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from conftest import API_KEY
from imgen.cli import app

SEEDREAM = "doubao-seedream-5-0-260128"
REFS_15 = [arg for i in range(15) for arg in ("-i", f"https://refs.example/r{i}.png")]
REFS_13 = REFS_15[:26]

# id, argv after `generate`, exit code, words the message must hold; {tmp} is the test's tmp dir.
CASES: list[tuple[str, list[str], int, tuple[str, ...]]] = [
    # the command line itself
    ("unknown-flag", ["x", "--bogus"], 2, ("--bogus",)),
    ("n-not-a-number", ["x", "-n", "abc"], 2, ("-n: 'abc' is not a whole number",)),
    ("timeout-not-a-number", ["x", "--timeout", "abc"], 2, ("--timeout: 'abc' is not a number",)),
    ("retries-above-10", ["x", "--retries", "11"], 2, ("--retries", "10")),
    ("retries-negative", ["x", "--retries", "-1"], 2, ("--retries", "0")),
    ("seed-not-a-number", ["x", "--seed", "abc"], 2, ("--seed: 'abc' is not a whole number",)),
    ("concurrency-zero", ["x", "--concurrency", "0"], 2, ("--concurrency", "1")),
    ("two-prompts", ["x", "y"], 2, ("extra argument", "y")),
    # the prompt
    ("no-prompt", [], 2, ("no prompt given", "--prompt-file")),
    ("empty-prompt", [""], 2, ("prompt is empty",)),
    ("blank-prompt", ["  \t "], 2, ("prompt is empty",)),
    ("prompt-file-missing", ["--prompt-file", "{tmp}/missing.txt"], 2, ("--prompt-file", "No such file", "UTF-8 text file")),
    ("prompt-file-directory", ["--prompt-file", "{tmp}/adir"], 2, ("--prompt-file", "Is a directory")),
    ("prompt-file-not-utf8", ["--prompt-file", "{tmp}/latin1.txt"], 2, ("--prompt-file", "not UTF-8")),
    ("prompt-and-prompt-file", ["x", "--prompt-file", "{tmp}/prompt.txt"], 2, ("PROMPT and --prompt-file", "one of them")),
    ("prompt-too-long-dall-e-2", ["a" * 1001, "-m", "dall-e-2"], 2, ("PROMPT", "1001 characters", "at most 1000")),
    ("prompt-too-long-dall-e-3", ["a" * 4001, "-m", "dall-e-3"], 2, ("PROMPT", "at most 4000")),
    ("prompt-too-long-qwen", ["a" * 801, "-m", "qwen-image"], 2, ("PROMPT", "at most 800")),
    ("prompt-too-long-gpt-image", ["a" * 32001, "-m", "gpt-image-1"], 2, ("PROMPT", "at most 32000")),
    # n and sizes
    ("n-zero", ["x", "-n", "0"], 2, ("-n 0", "n must be 1")),
    ("n-2-dall-e-3", ["x", "-n", "2", "-m", "dall-e-3"], 2, ("-n 2", "dall-e-3", "n must be 1")),
    ("n-11-dall-e-2", ["x", "-n", "11", "-m", "dall-e-2"], 2, ("-n 11", "1 to 10")),
    ("n-negative", ["x", "-n", "-1", "-m", "dall-e-2"], 2, ("-n -1", "1 to 10")),
    ("n-2-qwen", ["x", "-n", "2", "-m", "qwen-image"], 2, ("-n 2", "qwen-image", "n must be 1")),
    ("size-not-offered", ["x", "-s", "999x999", "-m", "dall-e-3"], 2, ("--size 999x999", "1024x1024, 1792x1024, 1024x1792")),
    ("size-garbage", ["x", "-s", "big"], 2, ("--size big", "1024x1024")),
    ("size-dall-e-2", ["x", "-s", "1024x1792", "-m", "dall-e-2"], 2, ("--size 1024x1792", "256x256, 512x512, 1024x1024")),
    ("size-gpt-image-2-not-16", ["x", "-s", "1000x1000", "-m", "gpt-image-2"], 2, ("--size 1000x1000", "divisible by 16")),
    ("size-gpt-image-2-too-big", ["x", "-s", "4096x4096", "-m", "gpt-image-2"], 2, ("--size 4096x4096", "3840")),
    ("size-gpt-image-2-zero", ["x", "-s", "0x0", "-m", "gpt-image-2"], 2, ("--size 0x0", "above 0")),
    # model options
    ("compression-101", ["x", "-m", "gpt-image-1", "--output-format", "jpeg", "--compression", "101"], 2, ("--compression 101", "0 to 100")),
    ("compression-on-png", ["x", "-m", "gpt-image-1", "--compression", "50"], 2, ("--compression 50", "jpeg or webp")),
    ("style-on-gpt-image", ["x", "-m", "gpt-image-1", "--style", "vivid"], 2, ("--style vivid", "gpt-image-1", "dall-e-3")),
    ("style-unknown", ["x", "-m", "dall-e-3", "--style", "bold"], 2, ("--style bold", "vivid, natural")),
    ("response-format-on-gpt-image", ["x", "-m", "gpt-image-1", "--response-format", "url"], 2, ("--response-format url", "base64")),
    ("response-format-unknown", ["x", "-m", "dall-e-3", "--response-format", "png"], 2, ("--response-format png", "url, b64_json")),
    ("transparent-jpeg", ["x", "-m", "gpt-image-1", "--background", "transparent", "--output-format", "jpeg"], 2, ("--background transparent", "png or webp")),
    ("quality-dall-e-3", ["x", "-m", "dall-e-3", "--quality", "ultra"], 2, ("--quality ultra", "standard, hd")),
    ("quality-gpt-image", ["x", "-m", "gpt-image-1", "--quality", "hd"], 2, ("--quality hd", "low, medium, high, auto")),
    ("moderation-unknown", ["x", "-m", "gpt-image-1", "--moderation", "high"], 2, ("--moderation high", "low, auto")),
    ("output-format-gif", ["x", "-m", "gpt-image-1", "--output-format", "gif"], 2, ("--output-format gif", "png, jpeg, webp")),
    ("output-format-on-dall-e-3", ["x", "-m", "dall-e-3", "--output-format", "png"], 2, ("--output-format png", "dall-e-3")),
    ("partials-4", ["x", "-m", "gpt-image-1", "--stream", "--partials", "4"], 2, ("--partials 4", "0 to 3")),
    ("partials-without-stream", ["x", "-m", "gpt-image-1", "--partials", "2"], 2, ("--partials 2", "--stream")),
    ("stream-on-dall-e-3", ["x", "-m", "dall-e-3", "--stream"], 2, ("--stream", "dall-e-3")),
    ("watermark-on-dall-e-3", ["x", "-m", "dall-e-3", "--watermark"], 2, ("--watermark", "dall-e-3")),
    ("strict-unknown-model", ["x", "--strict", "-m", "no-such-model"], 2, ("--model no-such-model", "--strict")),
    # Seedream
    ("seedream-15-references", ["x", "-m", SEEDREAM, *REFS_15], 2, ("--image", "x15", "at most 14")),
    ("seedream-refs-plus-images", ["x", "-m", SEEDREAM, "--sequential", "--max-images", "3", *REFS_13], 2, ("--max-images 3", "<= 15")),
    ("seedream-max-images-16", ["x", "-m", SEEDREAM, "--sequential", "--max-images", "16"], 2, ("--max-images 16", "1 to 15")),
    ("seedream-max-images-alone", ["x", "-m", SEEDREAM, "--max-images", "3"], 2, ("--max-images 3", "--sequential")),
    ("seedream-seed", ["x", "-m", SEEDREAM, "--seed", "-2"], 2, ("--seed -2", "-1 to 2147483647")),
    ("seedream-guidance", ["x", "-m", SEEDREAM, "--guidance", "11"], 2, ("--guidance", "1.0 to 10.0")),
    ("seedream-reference-not-image", ["x", "-m", SEEDREAM, "-i", "{tmp}/notimage.png"], 2, ("--image", "allowed: bmp, gif, jpeg, png, tiff, webp")),
    ("seedream-reference-missing", ["x", "-m", SEEDREAM, "-i", "{tmp}/missing.png"], 2, ("--image", "no such file")),
    ("sequential-on-gpt-image", ["x", "-m", "gpt-image-1", "--sequential"], 2, ("--sequential", "gpt-image-1")),
    # --param
    ("param-without-equals", ["x", "--param", "novalue"], 2, ("--param 'novalue'", "KEY=VALUE")),
    ("param-without-key", ["x", "--param", "=3"], 2, ("--param '=3'", "KEY=VALUE")),
    ("param-prompt", ["x", "--param", "prompt=hi"], 2, ("--param prompt", "PROMPT")),
    ("param-model", ["x", "--param", "model=m"], 2, ("--param model", "--model")),
    # --name
    ("name-unknown-field", ["x", "--name", "{nope}.{ext}"], 2, ("--name", "{nope}", "allowed fields: {date}")),
    ("name-path", ["x", "--name", "../{slug}.{ext}"], 2, ("--name", "not a path")),
    ("name-attribute", ["x", "--name", "{slug.__class__}"], 2, ("--name", "attribute and index access")),
    ("name-empty", ["x", "--name", ""], 2, ("--name", "empty")),
    ("name-open-brace", ["x", "--name", "{index"], 2, ("--name", "brace")),
    ("name-format-spec", ["x", "--name", "{slug:>40}.{ext}"], 2, ("--name", "zero-padded width")),
    # profile and base URL
    ("unknown-profile", ["x", "-P", "nosuchprofile"], 2, ("--profile nosuchprofile", "known profiles: cometapi")),
    ("base-url-ftp", ["x", "--base-url", "ftp://example.com"], 2, ("--base-url 'ftp://example.com'", "https://host")),
    ("base-url-no-scheme", ["x", "--base-url", "notaurl"], 2, ("--base-url 'notaurl'", "https://host")),
    ("base-url-bad-port", ["x", "--base-url", "https://example.com:99999"], 2, ("--base-url", "invalid port")),
    # output
    ("stdout-with-n-2", ["x", "-m", "dall-e-2", "-n", "2", "-o", "-"], 2, ("-o -", "can return 2", "-n 1")),
    ("output-is-a-file", ["x", "-o", "{tmp}/prompt.txt"], 2, ("-o", "not a directory", ".png/.jpg/.webp")),
    ("output-file-with-n-2", ["x", "-m", "dall-e-2", "-n", "2", "-o", "{tmp}/one.png"], 2, ("a single file holds one image", "-o DIR")),
    ("no-download-to-stdout", ["x", "--no-download", "-o", "-"], 2, ("--no-download with -o -", "drop one")),
    # limits
    ("max-download-garbage", ["x", "--max-download", "garbage"], 2, ("--max-download 'garbage'", "256M or 1G")),
    ("max-download-negative", ["x", "--max-download", "-5"], 2, ("--max-download '-5'", "256M")),
    ("max-download-zero", ["x", "--max-download", "0"], 2, ("--max-download '0'", "256M")),
    ("max-download-infinite", ["x", "--max-download", "inf"], 2, ("--max-download 'inf'", "256M")),
    ("max-download-overflow", ["x", "--max-download", "1e400"], 2, ("--max-download '1e400'", "256M")),
    ("max-download-unit", ["x", "--max-download", "10Q"], 2, ("--max-download '10Q'", "256M")),
    ("timeout-zero", ["x", "--timeout", "0"], 2, ("--timeout", "more than 0")),
    ("timeout-nan", ["x", "--timeout", "nan"], 2, ("--timeout 'nan'", "finite")),
    # streaming and batch flags out of place
    ("save-partials-without-stream", ["x", "--save-partials"], 2, ("--save-partials", "--stream")),
    ("events-without-json", ["x", "--events"], 2, ("--events", "--json")),
    ("force-without-batch", ["x", "--force"], 2, ("--force", "--batch")),
    ("batch-and-prompt", ["x", "--batch", "{tmp}/prompt.txt"], 2, ("--batch", "PROMPT")),
]

# id, config.toml text or None, environment, exit code, words
CONFIG_CASES = [
    ("config-not-toml", "default_profile = [\n", {}, 3, ("invalid TOML", "config.toml", "fix the file")),
    ("config-bad-value", '[profiles.cometapi]\ntimeout = "soon"\n', {}, 3, ("profiles.cometapi.timeout", "number", "imgen config set")),
    ("config-bad-dialect", '[profiles.cometapi]\napi = "soap"\n', {}, 3, ("profiles.cometapi.api", "openai, gemini, bria, midjourney, flux, envelope, placeholder")),
    ("config-missing-default", 'default_profile = "nope"\n', {}, 3, ("default_profile = 'nope'", "known profiles")),
    ("env-timeout", None, {"IMGEN_TIMEOUT": "soon"}, 3, ("IMGEN_TIMEOUT='soon'", "number")),
    ("env-retries", None, {"IMGEN_RETRIES": "many"}, 3, ("IMGEN_RETRIES='many'", "whole number")),
    ("env-profile", None, {"IMGEN_PROFILE": "nope"}, 2, ("IMGEN_PROFILE=nope", "known profiles")),
    ("env-base-url", None, {"IMGEN_BASE_URL": "gopher://x"}, 3, ("IMGEN_BASE_URL='gopher://x'", "https://host")),
]


@pytest.fixture(scope="module")
def shared_server():
    from fakeserver import FakeServer

    with FakeServer(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def listener(shared_server):
    """One server for the whole matrix (starting one per case costs more than the case)."""
    shared_server.reset()
    return shared_server


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "prompt.txt").write_text("a lighthouse", encoding="utf-8")
    (tmp_path / "notimage.png").write_text("this is not an image", encoding="utf-8")
    return tmp_path


def flat(text: str) -> str:
    """Usage errors come in a box, possibly wrapped: compare words, not layout."""
    return re.sub(r"\s+", " ", text.replace("│", " ").replace("╭", " ").replace("╰", " "))


def invoke(args: list[str], env: dict[str, str]):
    result = CliRunner().invoke(app, ["generate", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    for stream in (result.stdout, result.stderr):
        assert API_KEY not in stream
        assert "Traceback" not in stream
    return result


def assert_refused(result, code: int, words: tuple[str, ...], server) -> None:
    message = flat(result.stderr)
    assert result.exit_code == code, f"exit {result.exit_code}, wanted {code}: {message}"
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert result.stdout == ""
    assert server.requests == [], "a refused command line reached the server"


@pytest.mark.parametrize("args, code, words", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_refused_before_any_request(listener, inputs, args, code, words):
    argv = [a.replace("{tmp}", str(inputs)) for a in args]
    result = invoke(argv, {"IMGEN_BASE_URL": listener.base_url, "COMETAPI_KEY": API_KEY})
    assert_refused(result, code, words, listener)


@pytest.mark.parametrize("config, env, code, words", [pytest.param(*c[1:], id=c[0]) for c in CONFIG_CASES])
def test_bad_configuration_is_refused_before_any_request(listener, isolated_env, config, env, code, words):
    if config is not None:
        path = isolated_env / "config" / "imgen" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config, encoding="utf-8")
    result = invoke(["x"], {"IMGEN_BASE_URL": listener.base_url, "COMETAPI_KEY": API_KEY, **env})
    assert_refused(result, code, words, listener)


def test_the_matrix_is_big_enough():
    assert len(CASES) + len(CONFIG_CASES) >= 40


@pytest.mark.parametrize("case", ["unknown-flag", "n-2-qwen", "max-download-overflow", "unknown-profile"])
def test_the_installed_command_agrees(imgen, server, inputs, case):
    _, args, code, words = next(c for c in CASES if c[0] == case)
    res = imgen("generate", *args)
    assert res.returncode == code
    assert all(word in flat(res.stderr) for word in words) and "Traceback" not in res.stderr
    assert server.requests == []
