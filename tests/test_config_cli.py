"""`imgen config ...` in process: output shape, exit codes, files left behind, and no key in sight."""

from __future__ import annotations

import json
import os
import stat
import tomllib
import types

import pytest
from typer.testing import CliRunner

from imgen.cli import app
from imgen.config import settings as st

CANARY = "sk-SECRET-canary-0123456789"
MASKED = "sk-...6789"


@pytest.fixture(autouse=True)
def cfg(tmp_path, monkeypatch):
    for var in list(os.environ):
        if var.startswith("IMGEN_") or var in ("COMETAPI_KEY", "OPENAI_API_KEY", "DIANMING_API_KEY"):
            monkeypatch.delenv(var, raising=False)
    directory = tmp_path / "cfg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("IMGEN_CONFIG", str(directory / "config.toml"))
    monkeypatch.setenv("IMGEN_CREDENTIALS", str(directory / "credentials.toml"))
    return types.SimpleNamespace(dir=directory, config=directory / "config.toml", creds=directory / "credentials.toml")


@pytest.fixture
def imgen():
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        result = runner.invoke(app, list(args), input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        # Whatever the command, the whole key never reaches the terminal.
        assert CANARY not in result.stdout and CANARY not in result.stderr
        return result

    return run


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def stored(imgen, *profile_args):
    result = imgen("config", "key", "set", *profile_args, input=CANARY + "\n")
    assert result.exit_code == 0, result.stderr
    return result


# --- path, list ---------------------------------------------------------------------------------


def test_path_prints_the_config_and_credentials_paths(imgen, cfg):
    assert imgen("config", "path").stdout == f"{cfg.config}\n"
    assert imgen("config", "path", "--credentials").stdout == f"{cfg.creds}\n"
    assert not cfg.dir.exists()


def test_path_follows_xdg_config_home(imgen, monkeypatch, tmp_path):
    monkeypatch.delenv("IMGEN_CONFIG")
    monkeypatch.delenv("IMGEN_CREDENTIALS")
    assert imgen("config", "path").stdout.strip() == str(tmp_path / "xdg" / "imgen" / "config.toml")
    assert imgen("config", "path", "--credentials").stdout.strip() == str(tmp_path / "xdg" / "imgen" / "credentials.toml")


def test_list_marks_the_default_and_shows_file_profiles(imgen, cfg):
    lines = imgen("config", "list").stdout.splitlines()
    assert lines == ["* cometapi  built-in", "  dianming  built-in", "  offline   built-in", "  openai    built-in"]
    write(cfg.config, 'default_profile = "local"\n[profiles.local]\nmodel = "m"\n[profiles.openai]\nmodel = "x"\n')
    lines = imgen("config", "list").stdout.splitlines()
    assert "* local     file" in lines and "  openai    built-in, overridden in file" in lines


def test_list_json(imgen, cfg, monkeypatch):
    write(cfg.config, '[profiles.local]\nmodel = "m"\n')
    monkeypatch.setenv("IMGEN_PROFILE", "local")
    document = json.loads(imgen("config", "list", "--json").stdout)
    assert document["default"] == "local" and document["default_source"] == "env IMGEN_PROFILE"
    assert [p["name"] for p in document["profiles"]] == ["cometapi", "dianming", "local", "offline", "openai"]
    assert [p["name"] for p in document["profiles"] if p["default"]] == ["local"]


# --- show, get ------------------------------------------------------------------------------------


def test_show_gives_every_value_with_its_source(imgen, cfg, monkeypatch):
    write(cfg.config, '[profiles.cometapi]\nsize = "1024x1792"\n[profiles.cometapi.params]\nwatermark = false\n')
    monkeypatch.setenv("IMGEN_MODEL", "gpt-image-1")
    result = imgen("config", "show")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if not line.startswith("#")}
    assert "(env IMGEN_MODEL)" in rows["model"] and "gpt-image-1" in rows["model"]
    assert f"(profile cometapi ({cfg.config}))" in rows["size"]
    assert "(profile cometapi (built-in))" in rows["base_url"]
    assert "(default)" in rows["retries"]
    assert "false" in rows["params.watermark"]
    assert "not set" in rows["api_key"] and "COMETAPI_KEY" in rows["api_key"] and "config key set" in rows["api_key"]


def test_show_masks_the_key_and_names_its_source(imgen, cfg, monkeypatch):
    monkeypatch.setenv("COMETAPI_KEY", CANARY)
    row = next(line for line in imgen("config", "show").stdout.splitlines() if line.startswith("api_key "))
    assert MASKED in row and "(env COMETAPI_KEY)" in row
    document = json.loads(imgen("config", "show", "--json").stdout)
    assert document["api_key"] == {"set": True, "shown": MASKED, "source": "env COMETAPI_KEY", "problem": None, "hint": None}
    assert document["settings"]["base_url"] == {"value": "https://api.cometapi.com", "source": "profile cometapi (built-in)"}


def test_show_for_the_offline_profile_needs_no_key(imgen):
    document = json.loads(imgen("config", "show", "-P", "offline", "--json").stdout)
    assert document["profile"] == "offline" and document["api_key"]["shown"] == "not needed"


def test_get_prints_only_the_value(imgen, cfg):
    write(cfg.config, '[profiles.cometapi]\nretries = 4\nwatermark = true\n[profiles.cometapi.params]\nopts = {max_images = 2}\nflag = false\n')
    assert imgen("config", "get", "retries").stdout == "4\n"
    assert imgen("config", "get", "watermark").stdout == "true\n"
    assert imgen("config", "get", "params.flag").stdout == "false\n"
    assert imgen("config", "get", "params.opts").stdout == '{"max_images": 2}\n'
    assert imgen("config", "get", "base_url", "-P", "openai").stdout == "https://api.openai.com\n"
    assert imgen("config", "get", "profile").stdout == "cometapi\n"


def test_get_of_an_unset_value_prints_nothing(imgen):
    result = imgen("config", "get", "size")
    assert result.exit_code == 0 and result.stdout == "" and "not set" in result.stderr


@pytest.mark.parametrize("key", ["nonsense", "api_key"])
def test_get_refuses_unknown_keys_and_never_prints_a_key(imgen, monkeypatch, key):
    monkeypatch.setenv("COMETAPI_KEY", CANARY)
    result = imgen("config", "get", key)
    assert result.exit_code == 2 and result.stdout == ""
    assert "imgen: error:" in result.stderr


# --- set, unset, use ------------------------------------------------------------------------------


def test_set_types_values_per_key(imgen, cfg):
    for key, value in [("retries", "5"), ("timeout", "30"), ("watermark", "true"), ("seed", "-1"), ("size", "1536x1024"), ("params.flag", "false"), ("params.word", "hello world")]:
        result = imgen("config", "set", key, value)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""
    assert tomllib.loads(cfg.config.read_text()) == {
        "profiles": {
            "cometapi": {
                "retries": 5,
                "timeout": 30.0,
                "watermark": True,
                "seed": -1,
                "size": "1536x1024",
                "params": {"flag": False, "word": "hello world"},
            }
        }
    }


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["colour", "blue"], "known settings: api, base_url"),
        (["base_url", "ftp://x"], "https://host"),
        (["base_url", "example.com"], "https://host"),
        (["api", "grpc"], "openai, gemini, bria, midjourney, flux, envelope, placeholder"),
        (["output_compression", "101"], "between 0 and 100"),
        (["retries", "2.5"], "whole number"),
        (["params", "{}"], "params.KEY"),
        (["api_key", CANARY], "config key set"),
        (["api_key_env", CANARY], "NAME of an environment variable"),
        (["-P", "offline", "name", "{foo}/{ext}"], "not a valid name template"),
        (["name", "{prompt}.{ext}"], "{prompt} is not a field"),
    ],
)
def test_set_refuses_bad_input_as_a_usage_error_and_writes_nothing(imgen, cfg, args, words):
    write(cfg.config, "# hand-written\n[profiles.keep]\nmodel = 'm'\n")
    before = cfg.config.read_bytes()
    result = imgen("config", "set", *args)
    assert result.exit_code == 2
    assert words in result.stderr
    assert cfg.config.read_bytes() == before


def test_set_keeps_unrelated_content(imgen, cfg):
    original = (
        'default_profile = "cometapi"\nfuture = { a = 1 }\n'
        '[profiles.cometapi]\nmodel = "m"\nnot_yet_known = true\n'
        '[profiles.cometapi.params]\nwatermark = false\n'
        '[profiles.other]\nbase_url = "http://127.0.0.1:1"\n[profiles.other.params]\nseed = 3\n'
    )
    write(cfg.config, original)
    result = imgen("config", "set", "quality", "hd")
    assert result.exit_code == 0
    expected = tomllib.loads(original)
    expected["profiles"]["cometapi"]["quality"] = "hd"
    assert tomllib.loads(cfg.config.read_text()) == expected


def test_a_bad_name_template_in_the_file_is_a_config_error(imgen, cfg):
    # Written by hand (config set refuses it): it must not pass for a --name the user never gave.
    write(cfg.config, '[profiles.offline]\nname = "{foo}.{ext}"\n')
    result = imgen("generate", "-P", "offline", "a fox", "--dry-run")
    assert result.exit_code == 3, result.stderr
    assert str(cfg.config) in result.stderr and "profiles.offline.name" in result.stderr
    assert "{foo} is not a field" in result.stderr and "--name" not in result.stderr.split("hint:")[0]


def test_malformed_file_is_exit_3_names_line_and_column_and_is_never_rewritten(imgen, cfg):
    write(cfg.config, '[profiles.local]\nmodel = "m"\nbase_url = http://x\n')
    before = cfg.config.read_bytes()
    for args in (["set", "model", "x"], ["set", "-P", "local", "model", "x"], ["unset", "model"], ["use", "offline"], ["show"], ["get", "model"], ["list"]):
        result = imgen("config", *args)
        assert result.exit_code == 3, args
        assert str(cfg.config) in result.stderr and "line 3, column 12" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert cfg.config.read_bytes() == before


def test_set_local_then_use_it_is_what_resolve_sees(imgen, cfg):
    assert imgen("config", "set", "-P", "local", "base_url", "http://127.0.0.1:8080").exit_code == 0
    assert imgen("config", "use", "local").exit_code == 0
    settings = st.resolve({})
    assert settings.profile == "local"
    assert settings["base_url"] == "http://127.0.0.1:8080"
    assert settings.source("base_url") == f"profile local ({cfg.config})"
    assert stat.S_IMODE(cfg.dir.stat().st_mode) == 0o700


def test_use_an_unknown_profile_lists_the_known_ones(imgen, cfg):
    result = imgen("config", "use", "nope")
    assert result.exit_code == 2 and "no such profile" in result.stderr and "cometapi" in result.stderr
    assert not cfg.config.exists()


def test_unset_brings_back_the_built_in_value(imgen, cfg):
    imgen("config", "set", "model", "gpt-image-1")
    result = imgen("config", "unset", "model")
    assert result.exit_code == 0 and "dall-e-3" in result.stderr
    assert imgen("config", "get", "model").stdout == "dall-e-3\n"
    again = imgen("config", "unset", "model")
    assert again.exit_code == 0 and "nothing changed" in again.stderr


def test_unknown_keys_in_the_file_are_warned_about_on_stderr(imgen, cfg):
    write(cfg.config, '[profiles.cometapi]\nsizee = "1024x1024"\n')
    result = imgen("config", "show")
    assert result.exit_code == 0 and "sizee" in result.stderr and "sizee" not in result.stdout


# --- keys -----------------------------------------------------------------------------------------


def test_key_set_from_piped_stdin_is_stored_0600_and_shown_masked(imgen, cfg):
    result = stored(imgen)
    assert MASKED in result.stderr and result.stdout == ""
    assert stat.S_IMODE(cfg.creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.dir.stat().st_mode) == 0o700
    assert tomllib.loads(cfg.creds.read_text()) == {"profiles": {"cometapi": {"api_key": CANARY}}}
    assert not cfg.config.exists()  # the key never goes near config.toml
    row = next(line for line in imgen("config", "show").stdout.splitlines() if line.startswith("api_key "))
    assert MASKED in row and f"stored key ({cfg.creds})" in row


def test_key_set_for_a_profile_and_remove(imgen, cfg):
    stored(imgen, "-P", "openai")
    stored(imgen, "-P", "dianming")
    result = imgen("config", "key", "remove", "-P", "openai")
    assert result.exit_code == 0 and "removed" in result.stderr
    assert list(tomllib.loads(cfg.creds.read_text())["profiles"]) == ["dianming"]
    assert imgen("config", "key", "remove", "-P", "openai").exit_code == 0


def test_key_set_refuses_empty_input_and_unknown_profiles(imgen, cfg):
    assert imgen("config", "key", "set", input="\n").exit_code == 2
    result = imgen("config", "key", "set", "-P", "nope", input=CANARY)
    assert result.exit_code == 2 and "no such profile" in result.stderr
    assert not cfg.creds.exists()


def test_key_set_says_when_an_environment_key_wins(imgen, monkeypatch):
    monkeypatch.setenv("COMETAPI_KEY", "sk-env-00000000")
    assert "COMETAPI_KEY is set" in stored(imgen).stderr


def test_loose_credentials_are_reported_with_chmod_fix(imgen, cfg):
    stored(imgen)
    os.chmod(cfg.creds, 0o644)
    result = imgen("config", "show")
    assert result.exit_code == 0
    assert f"chmod 600 {cfg.creds}" in result.stderr and "0644" in result.stderr
    assert MASKED in result.stdout  # still used


def test_openai_key_is_not_offered_to_another_host(imgen, cfg, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    assert imgen("config", "set", "-P", "openai", "base_url", "http://127.0.0.1:9").exit_code == 0
    result = imgen("config", "show", "-P", "openai")
    row = next(line for line in result.stdout.splitlines() if line.startswith("api_key "))
    assert "not used" in row and "api.openai.com" in row and MASKED not in row
    document = json.loads(imgen("config", "show", "-P", "openai", "--json").stdout)
    assert document["api_key"]["set"] is False and "OPENAI_API_KEY" in document["api_key"]["problem"]
    imgen("config", "unset", "-P", "openai", "base_url")
    assert MASKED in imgen("config", "show", "-P", "openai").stdout


def test_no_output_or_error_ever_holds_the_key(imgen, cfg, monkeypatch):
    stored(imgen)
    monkeypatch.setenv("COMETAPI_KEY", CANARY)
    for args in (["show"], ["show", "--json"], ["list"], ["list", "--json"], ["get", "api_key_env"], ["get", "api_key"], ["set", "api_key", CANARY], ["path"]):
        imgen("config", *args)  # the fixture asserts the key is absent from stdout and stderr
    write(cfg.creds, f'[profiles.cometapi]\napi_key = "{CANARY}\n')
    monkeypatch.delenv("COMETAPI_KEY")
    result = imgen("config", "show")
    assert result.exit_code == 3 and "line 2" in result.stderr


@pytest.mark.parametrize("args", [[], ["path"], ["list"], ["show"], ["get"], ["set"], ["unset"], ["use"], ["key"], ["key", "set"], ["key", "remove"]])
def test_every_help_page_renders(imgen, args):
    result = imgen("config", *args, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout
