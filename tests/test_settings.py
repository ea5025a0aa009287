"""Settings resolution, the config file and stored keys, without the CLI."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
import types
from pathlib import Path

import pytest

import imgen
from imgen.config import configfile, credentials
from imgen.config import edit as config_edit
from imgen.config import settings as st
from imgen.errors import ConfigError, ExitCode, UsageError
from imgen.request import FLAG_FOR_FIELD

CANARY = "sk-SECRET-canary-0123456789"


@pytest.fixture(autouse=True)
def cfg(tmp_path, monkeypatch):
    """Own config and credentials files per test, and none of the developer's variables."""
    for var in list(os.environ):
        if var.startswith("IMGEN_") or var in ("COMETAPI_KEY", "OPENAI_API_KEY", "DIANMING_API_KEY"):
            monkeypatch.delenv(var, raising=False)
    directory = tmp_path / "cfg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("IMGEN_CONFIG", str(directory / "config.toml"))
    monkeypatch.setenv("IMGEN_CREDENTIALS", str(directory / "credentials.toml"))
    return types.SimpleNamespace(dir=directory, config=directory / "config.toml", creds=directory / "credentials.toml")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- precedence and sources ---------------------------------------------------------------------


def test_built_in_profile_and_defaults_without_any_file(cfg):
    s = st.resolve({})
    assert s.profile == "cometapi"
    assert s.source("profile") == "default"
    assert s["base_url"] == "https://api.cometapi.com"
    assert s.source("base_url") == "profile cometapi (built-in)"
    assert s["retries"] == 2 and s.source("retries") == "default"
    assert s.get("size") is None
    assert not cfg.config.exists()


@pytest.mark.parametrize(
    ("key", "var", "file_value", "env_raw", "env_value", "flag_value"),
    [
        ("model", "IMGEN_MODEL", "gpt-image-1", "gpt-image-2", "gpt-image-2", "dall-e-2"),
        ("base_url", "IMGEN_BASE_URL", "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:2", "http://127.0.0.1:3"),
        ("timeout", "IMGEN_TIMEOUT", 10.0, "20", 20.0, 30.0),
        ("retries", "IMGEN_RETRIES", 4, "5", 5, 6),
        ("output_dir", "IMGEN_OUTPUT_DIR", "/srv/file", "/srv/env", "/srv/env", "/srv/flag"),
    ],
)
def test_each_level_wins_over_the_next_with_its_source(cfg, monkeypatch, key, var, file_value, env_raw, env_value, flag_value):
    import tomli_w

    write(cfg.config, tomli_w.dumps({"profiles": {"cometapi": {key: file_value}}}))
    s = st.resolve({})
    assert s[key] == file_value
    assert s.source(key) == f"profile cometapi ({cfg.config})"

    monkeypatch.setenv(var, env_raw)
    s = st.resolve({})
    assert s[key] == env_value and type(s[key]) is type(env_value)
    assert s.source(key) == f"env {var}"

    s = st.resolve({key: flag_value})
    assert s[key] == flag_value
    assert s.source(key) == f"flag {st.FLAG_FOR_KEY[key]}"


def test_flags_given_as_none_are_not_given(cfg, monkeypatch):
    monkeypatch.setenv("IMGEN_MODEL", "from-env")
    s = st.resolve({"model": None, "size": None})
    assert s["model"] == "from-env" and s.get("size") is None


def test_generation_fields_come_from_the_profile_and_flags_name_their_flag(cfg):
    write(cfg.config, '[profiles.cometapi]\nsize = "1792x1024"\nquality = "hd"\n')
    s = st.resolve({"quality": "standard"})
    assert s.get("size") == "1792x1024" and s.source("size") == f"profile cometapi ({cfg.config})"
    assert s.get("quality") == "standard" and s.source("quality") == "flag --quality"


def test_generation_fields_are_api_body_fields():
    assert set(st.GENERATION_FIELDS) <= set(FLAG_FOR_FIELD)
    assert {"size", "n", "quality", "watermark", "seed", "guidance_scale"} <= set(st.GENERATION_FIELDS)
    assert not {"base_url", "model", "timeout", "params"} & set(st.GENERATION_FIELDS)
    for name, spec in st.SETTING_KEYS.items():
        assert spec.type in (str, int, float, bool, dict) and spec.help, name


def test_output_dir_from_the_file_expands_home(cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(cfg.config, '[profiles.cometapi]\noutput_dir = "~/Pictures/imgen"\n')
    assert st.resolve({})["output_dir"] == str(tmp_path / "home" / "Pictures" / "imgen")


def test_file_overrides_one_key_of_a_built_in_profile_only(cfg):
    write(cfg.config, '[profiles.openai]\nmodel = "gpt-image-1"\n')
    s = st.resolve({"profile": "openai"})
    assert s["model"] == "gpt-image-1" and s.source("model") == f"profile openai ({cfg.config})"
    assert s["base_url"] == "https://api.openai.com" and s.source("base_url") == "profile openai (built-in)"


def test_a_new_file_profile_starts_from_the_defaults(cfg):
    write(cfg.config, '[profiles.local]\nbase_url = "http://127.0.0.1:8080"\n')
    s = st.resolve({"profile": "local"})
    assert s["base_url"] == "http://127.0.0.1:8080"
    assert s["api"] == "openai" and s.source("api") == "default"


# --- choosing the profile -----------------------------------------------------------------------


def test_profile_choice_flag_then_env_then_file_then_builtin(cfg, monkeypatch):
    write(cfg.config, 'default_profile = "openai"\n[profiles.local]\nmodel = "m"\n')
    s = st.resolve({})
    assert s.profile == "openai" and s.source("profile") == f"default_profile in {cfg.config}"
    monkeypatch.setenv("IMGEN_PROFILE", "dianming")
    s = st.resolve({})
    assert s.profile == "dianming" and s.source("profile") == "env IMGEN_PROFILE"
    s = st.resolve({"profile": "local"})
    assert s.profile == "local" and s.source("profile") == "flag --profile"


# A name typed now (--profile, IMGEN_PROFILE) is a usage error, like a mistyped flag; the file's
# default_profile is a configuration error.
@pytest.mark.parametrize(("how", "error", "code"), [("flag", UsageError, ExitCode.USAGE), ("env", UsageError, ExitCode.USAGE),
                                                    ("file", ConfigError, ExitCode.CONFIG)])
def test_unknown_profile_is_an_error_listing_the_known_ones(cfg, monkeypatch, how, error, code):
    write(cfg.config, '[profiles.local]\nmodel = "m"\n' if how != "file" else 'default_profile = "nope"\n[profiles.local]\nmodel = "m"\n')
    flags = {}
    if how == "flag":
        flags = {"profile": "nope"}
    elif how == "env":
        monkeypatch.setenv("IMGEN_PROFILE", "nope")
    with pytest.raises(error) as info:
        st.resolve(flags)
    assert info.value.exit_code == code
    assert "nope" in info.value.message and "no such profile" in info.value.message
    for name in ("cometapi", "dianming", "local", "offline", "openai"):
        assert name in info.value.hint


# --- where the file lives -----------------------------------------------------------------------


def test_xdg_config_home_is_honoured(cfg, monkeypatch, tmp_path):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG applies on Linux and other Unix systems")
    monkeypatch.delenv("IMGEN_CONFIG")
    monkeypatch.delenv("IMGEN_CREDENTIALS")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    expected = tmp_path / "elsewhere" / "imgen" / "config.toml"
    assert configfile.config_path() == expected
    assert configfile.credentials_path() == expected.with_name("credentials.toml")
    write(expected, '[profiles.cometapi]\nmodel = "from-xdg"\n')
    assert st.resolve({})["model"] == "from-xdg"
    # An explicit environment mapping is honoured the same way.
    assert configfile.config_path({"XDG_CONFIG_HOME": "/x/y"}) == Path("/x/y/imgen/config.toml")


def test_imgen_config_overrides_the_location(cfg, monkeypatch, tmp_path):
    other = tmp_path / "other.toml"
    write(other, '[profiles.cometapi]\nmodel = "from-other"\n')
    monkeypatch.setenv("IMGEN_CONFIG", str(other))
    s = st.resolve({})
    assert s["model"] == "from-other" and s.source("model") == f"profile cometapi ({other})"


def test_resolve_reads_only_the_given_environment(cfg, tmp_path):
    path = tmp_path / "given.toml"
    write(path, 'default_profile = "local"\n[profiles.local]\nretries = 7\n')
    s = st.resolve({}, {"IMGEN_CONFIG": str(path), "IMGEN_MODEL": "given"})
    assert s.profile == "local" and s["retries"] == 7 and s["model"] == "given"


# --- params ---------------------------------------------------------------------------------------


def test_params_merge_file_then_flags_with_sources(cfg):
    write(cfg.config, '[profiles.cometapi.params]\nwatermark = false\nseed = 1\n')
    s = st.resolve({"params": {"seed": 2}})
    assert s["params"] == {"watermark": False, "seed": 2}
    assert s.params_sources == {"watermark": f"profile cometapi ({cfg.config})", "seed": "flag --param"}
    assert st.resolve({})["params"] == {"watermark": False, "seed": 1}


def test_defaults_are_not_mutated_by_resolution(cfg):
    write(cfg.config, '[profiles.cometapi.params]\nwatermark = false\n')
    st.resolve({"params": {"x": 1}})
    assert st.DEFAULTS["params"] == {}
    assert st.resolve({}, {"IMGEN_CONFIG": str(cfg.dir / "none.toml")})["params"] == {}


# --- checking the file --------------------------------------------------------------------------


def test_malformed_toml_names_file_line_and_column(cfg):
    write(cfg.config, 'default_profile = "x"\n[profiles.local]\nbase_url = \n')
    with pytest.raises(ConfigError) as info:
        st.resolve({})
    message = info.value.message
    assert str(cfg.config) in message and "line 3" in message and "column 12" in message
    assert info.value.exit_code == ExitCode.CONFIG == 3


def test_invalid_utf8_is_a_config_error(cfg):
    cfg.dir.mkdir(parents=True)
    cfg.config.write_bytes(b"model = \"\xff\"\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        st.resolve({})


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('retries = "three"', "whole number"),
        ("timeout = -1", "more than 0"),
        ('api = "soap"', "openai, gemini, bria, midjourney, flux, envelope, placeholder"),
        ('base_url = "ftp://host"', "https://host"),
        ("output_compression = 101", "between 0 and 100"),
        ("watermark = 1", "true or false"),
        ("params = 3", "params must be a table"),
        ('name = "{foo}/{ext}"', "not a valid name template"),
    ],
)
def test_a_bad_value_in_the_file_names_file_profile_and_key(cfg, line, words):
    write(cfg.config, f"[profiles.local]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        st.resolve({"profile": "local"})
    key = line.split(" ")[0]
    assert str(cfg.config) in info.value.message and f"profiles.local.{key}" in info.value.message
    assert words in info.value.message


def test_unknown_keys_warn_and_never_show_their_values(cfg):
    write(cfg.config, f'colour = "blue"\n[profiles.cometapi]\nsizes = "x"\napi_key = "{CANARY}"\n')
    s = st.resolve({})
    text = "\n".join(s.warnings)
    assert "sizes" in text and "colour" in text and "api_key" in text and "params" in text
    assert CANARY not in text


def test_bad_environment_values_name_the_variable(cfg, monkeypatch):
    monkeypatch.setenv("IMGEN_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="IMGEN_TIMEOUT"):
        st.resolve({})


def test_bad_flag_for_a_connection_setting_is_a_usage_error(cfg):
    with pytest.raises(UsageError, match="--base-url"):
        st.resolve({"base_url": "localhost:8080"})


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("retries", "5", 5),
        ("timeout", "30", 30.0),
        ("watermark", "false", False),
        ("watermark", "YES", True),
        ("seed", "-1", -1),
        ("guidance_scale", "2.5", 2.5),
        ("base_url", "http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("base_url", "https://gw.example/openai", "https://gw.example/openai"),
        ("size", "2048x2048", "2048x2048"),
        ("size", "2K", "2K"),
        ("api", "envelope", "envelope"),
    ],
)
def test_parse_value_types_and_normalises(key, raw, value):
    parsed = st.parse_value(key, raw)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("retries", "1.5"),
        ("retries", "-1"),
        ("n", "0"),
        ("n", "11"),
        ("timeout", "nan"),
        ("watermark", "maybe"),
        ("base_url", "api.example.com"),
        ("base_url", "https://user:pw@host"),
        ("base_url", "https://host/?x=1"),
        ("api", "graphql"),
        ("api_key_env", CANARY),
        ("output_compression", "101"),
        ("quality", "ultra"),
        ("size", "big"),
        ("name", "{date"),
        ("name", "{foo}.{ext}"),
        ("name", "a/{index}.{ext}"),
        ("params", "{}"),
    ],
)
def test_parse_value_refuses(key, raw):
    with pytest.raises(ValueError) as info:
        st.parse_value(key, raw)
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("false", False),
        ("3", 3),
        ("0.5", 0.5),
        ('"quoted"', "quoted"),
        ("[1, 2]", [1, 2]),
        ('{"max_images": 4}', {"max_images": 4}),
        ("{max_images = 4}", {"max_images": 4}),
        ("plain words", "plain words"),
        ("1979-05-27", "1979-05-27"),
        ("null", "null"),
        ("1\nx = 2", "1\nx = 2"),
    ],
)
def test_param_values_parse_as_toml_or_json_else_string(raw, value):
    assert st.parse_param(raw) == value


def test_mask_key():
    assert st.mask_key(CANARY) == "sk-...6789"
    assert st.mask_key("abcdefghijkl") == "...ijkl"
    assert st.mask_key("short") == "***"


# --- keys -----------------------------------------------------------------------------------------


def test_key_precedence_imgen_api_key_then_profile_variable_then_stored(cfg, monkeypatch):
    credentials.store_key(cfg.creds, "cometapi", "sk-stored-00001111")
    s = st.resolve({})
    assert s.api_key() == st.Sourced("sk-stored-00001111", f"stored key ({cfg.creds})")
    monkeypatch.setenv("COMETAPI_KEY", "sk-env-22223333")
    assert st.resolve({}).api_key() == st.Sourced("sk-env-22223333", "env COMETAPI_KEY")
    monkeypatch.setenv("IMGEN_API_KEY", "sk-imgen-44445555")
    assert st.resolve({}).api_key() == st.Sourced("sk-imgen-44445555", "env IMGEN_API_KEY")


def test_no_key_leaves_no_problem_but_a_hint(cfg):
    s = st.resolve({})
    assert s.api_key() is None and s.key_problem is None
    assert "COMETAPI_KEY" in s.key_hint() and "imgen config key set -P cometapi" in s.key_hint()


def test_openai_key_is_sent_to_openai(cfg, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    s = st.resolve({"profile": "openai"})
    assert s.api_key() == st.Sourced(CANARY, "env OPENAI_API_KEY") and s.key_problem is None


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "https://api.cometapi.com", "http://api.openai.com", "https://api.openai.com.evil.example"])
def test_openai_key_is_never_sent_elsewhere(cfg, monkeypatch, base_url):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("IMGEN_BASE_URL", base_url)
    s = st.resolve({"profile": "openai"})
    assert s.api_key() is None
    assert "OPENAI_API_KEY" in s.key_problem and "api.openai.com" in s.key_problem
    assert CANARY not in s.key_problem


def test_a_profile_naming_openai_api_key_keeps_its_stored_key_from_other_hosts(cfg, monkeypatch):
    write(cfg.config, '[profiles.local]\nbase_url = "http://127.0.0.1:9"\napi_key_env = "OPENAI_API_KEY"\n')
    credentials.store_key(cfg.creds, "local", CANARY)
    s = st.resolve({"profile": "local"})
    assert s.api_key() is None and "stored key" in s.key_problem
    # IMGEN_API_KEY is imgen's own and always set on purpose.
    monkeypatch.setenv("IMGEN_API_KEY", "sk-mine-12345678")
    assert s.api_key().value == "sk-mine-12345678" and s.key_problem is None


def test_loose_credentials_are_reported_with_the_fix_and_still_used(cfg):
    credentials.store_key(cfg.creds, "cometapi", CANARY)
    os.chmod(cfg.creds, 0o644)
    s = st.resolve({})
    assert s.api_key().value == CANARY
    assert any(f"chmod 600 {cfg.creds}" in w and "0644" in w for w in s.warnings)
    assert CANARY not in "\n".join(s.warnings)


# --- files on disk --------------------------------------------------------------------------------


def test_credentials_are_0600_in_a_new_0700_directory(cfg):
    path = credentials.store_key(cfg.creds, "cometapi", f"  {CANARY}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.dir.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text())["profiles"]["cometapi"]["api_key"] == CANARY


def test_storing_and_removing_keeps_other_profiles_keys(cfg):
    credentials.store_key(cfg.creds, "cometapi", "sk-one-11111111")
    credentials.store_key(cfg.creds, "local", "sk-two-22222222")
    os.chmod(cfg.creds, 0o644)
    assert credentials.remove_key(cfg.creds, "cometapi") is True
    assert credentials.remove_key(cfg.creds, "cometapi") is False
    assert tomllib.loads(cfg.creds.read_text()) == {"profiles": {"local": {"api_key": "sk-two-22222222"}}}
    assert stat.S_IMODE(cfg.creds.stat().st_mode) == 0o600  # every rewrite tightens the mode


@pytest.mark.parametrize("raw", ["", "   \n", "sk-a b", "sk-one\nsk-two"])
def test_a_key_must_be_one_token(raw):
    with pytest.raises(UsageError):
        credentials.clean_key(raw)


def test_malformed_credentials_never_show_the_key(cfg):
    write(cfg.creds, f'[profiles.cometapi]\napi_key = "{CANARY}\n')
    with pytest.raises(ConfigError) as info:
        st.resolve({}).api_key()
    assert "line 2" in info.value.message and CANARY not in info.value.message
    with pytest.raises(ConfigError):
        credentials.store_key(cfg.creds, "cometapi", "sk-new-12345678")
    assert CANARY in cfg.creds.read_text()  # untouched


def test_atomic_write_leaves_no_temporary_files_and_keeps_mode(cfg):
    configfile.write_toml(cfg.config, {"a": 1})
    assert stat.S_IMODE(cfg.config.stat().st_mode) == 0o644
    os.chmod(cfg.config, 0o640)
    configfile.write_toml(cfg.config, {"a": 2})
    assert stat.S_IMODE(cfg.config.stat().st_mode) == 0o640
    assert sorted(p.name for p in cfg.dir.iterdir()) == ["config.toml"]


def test_a_symlinked_config_is_written_through(cfg, tmp_path):
    real = tmp_path / "dotfiles" / "imgen.toml"
    write(real, '[profiles.keep]\nmodel = "m"\n')
    cfg.dir.mkdir(parents=True)
    cfg.config.symlink_to(real)
    config_edit.set_value("model", "x", "local")
    assert cfg.config.is_symlink()
    assert tomllib.loads(real.read_text())["profiles"] == {"keep": {"model": "m"}, "local": {"model": "x"}}


def test_an_existing_directory_keeps_its_mode(cfg):
    cfg.dir.mkdir(parents=True)
    os.chmod(cfg.dir, 0o755)
    config_edit.set_value("model", "x")
    assert stat.S_IMODE(cfg.dir.stat().st_mode) == 0o755


# --- edits ----------------------------------------------------------------------------------------

ORIGINAL = """\
default_profile = "cometapi"
future_option = "kept"

[profiles.cometapi]
model = "gpt-image-1"
shiny_new_key = [1, 2]

[profiles.cometapi.params]
watermark = false

[profiles.cometapi.params.nested]
max_images = 3

[profiles.other]
base_url = "http://127.0.0.1:1"
"""


def test_set_changes_one_key_and_keeps_everything_else(cfg):
    write(cfg.config, ORIGINAL)
    before = tomllib.loads(ORIGINAL)
    config_edit.set_value("size", "1024x1536")
    after = tomllib.loads(cfg.config.read_text())
    before["profiles"]["cometapi"]["size"] = "1024x1536"
    assert after == before


def test_set_on_a_built_in_only_profile_writes_just_that_key(cfg):
    change = config_edit.set_value("retries", "5", "openai")
    assert change.profile == "openai" and change.value == 5
    assert tomllib.loads(cfg.config.read_text()) == {"profiles": {"openai": {"retries": 5}}}


def test_set_without_profile_targets_env_then_file_default(cfg, monkeypatch):
    write(cfg.config, 'default_profile = "openai"\n')
    assert config_edit.set_value("model", "a").profile == "openai"
    monkeypatch.setenv("IMGEN_PROFILE", "local")
    assert config_edit.set_value("model", "b").profile == "local"


def test_set_params_and_unset_them(cfg):
    config_edit.set_value("params.watermark", "false", "local")
    config_edit.set_value("params.sequential_image_generation_options", '{"max_images": 4}', "local")
    assert st.resolve({"profile": "local"})["params"] == {
        "watermark": False,
        "sequential_image_generation_options": {"max_images": 4},
    }
    config_edit.unset_value("params.watermark", "local")
    config_edit.unset_value("params.sequential_image_generation_options", "local")
    assert tomllib.loads(cfg.config.read_text()) == {"profiles": {"local": {}}}
    assert st.resolve({"profile": "local"}).profile == "local"  # a file-only profile survives empty


def test_unset_on_a_built_in_profile_brings_back_the_built_in_value(cfg):
    config_edit.set_value("base_url", "http://127.0.0.1:1", "openai")
    change = config_edit.unset_value("base_url", "openai")
    assert any("https://api.openai.com" in note for note in change.notes)
    assert tomllib.loads(cfg.config.read_text()) == {}
    assert st.resolve({"profile": "openai"})["base_url"] == "https://api.openai.com"


def test_unset_of_an_absent_key_changes_nothing(cfg):
    write(cfg.config, ORIGINAL)
    change = config_edit.unset_value("size")
    assert change.changed is False and cfg.config.read_text() == ORIGINAL


def test_unset_removes_an_unknown_key_so_typos_can_be_cleaned(cfg):
    write(cfg.config, ORIGINAL)
    config_edit.unset_value("shiny_new_key")
    assert "shiny_new_key" not in tomllib.loads(cfg.config.read_text())["profiles"]["cometapi"]
    with pytest.raises(UsageError):
        config_edit.unset_value("never_was")


def test_set_can_repair_a_bad_value_that_blocks_resolution(cfg):
    write(cfg.config, '[profiles.cometapi]\nretries = "three"\n')
    with pytest.raises(ConfigError):
        st.resolve({})
    config_edit.set_value("retries", "3")
    assert st.resolve({})["retries"] == 3


@pytest.mark.parametrize("name", ["has space", "-dash", "dot.ted", " "])
def test_set_refuses_unusable_profile_names(cfg, name):
    with pytest.raises(UsageError):
        config_edit.set_value("model", "x", name)
    assert not cfg.config.exists()


def test_use_requires_an_existing_profile(cfg):
    config_edit.use_profile("offline")
    assert tomllib.loads(cfg.config.read_text()) == {"default_profile": "offline"}
    with pytest.raises(UsageError) as info:  # the name was typed on the command line
        config_edit.use_profile("nope")
    assert "offline" in info.value.hint


def test_model_is_checked_against_the_capability_table_when_there_is_one(cfg, monkeypatch):
    table = {key: types.SimpleNamespace(dialect=key[1]) for key in (("dall-e-3", "openai"), ("gpt-image-1.5", "envelope"))}

    def lookup(model_id, dialect=None):
        if dialect is None:
            return next((spec for (m, _), spec in table.items() if m == model_id), None)
        return table.get((model_id, dialect))

    fake = types.ModuleType("imgen.models.capabilities")
    fake.lookup = lookup
    monkeypatch.setitem(sys.modules, "imgen.models.capabilities", fake)
    monkeypatch.setattr(imgen.models, "capabilities", fake, raising=False)
    assert config_edit.set_value("model", "dall-e-3").notes == []
    assert "not in imgen's table" in config_edit.set_value("model", "brand-new-model").notes[0]
    # A profile that forces a dialect is told when the model is not spoken in it; one that does
    # not lets every model speak its own.
    write(cfg.config, '[profiles.mine]\napi = "openai"\n')
    assert "not for the 'openai' API" in config_edit.set_value("model", "gpt-image-1.5", "mine").notes[0]
    assert config_edit.set_value("model", "gpt-image-1.5").notes == []
    assert config_edit.set_value("model", "gpt-image-1.5", "dianming").notes == []


@pytest.mark.parametrize("url", [f"https://me:{CANARY}@host", f"https://host/?key={CANARY}"])
def test_a_refused_base_url_is_not_repeated_when_it_may_hold_a_secret(cfg, monkeypatch, url):
    with pytest.raises(UsageError) as flag_error:
        st.resolve({"base_url": url})
    with pytest.raises(UsageError) as set_error:
        config_edit.set_value("base_url", url)
    monkeypatch.setenv("IMGEN_BASE_URL", url)
    with pytest.raises(ConfigError) as env_error:
        st.resolve({})
    for info in (flag_error, set_error, env_error):
        assert "base" in info.value.message.lower() and CANARY not in info.value.message


def test_the_key_hint_never_points_at_a_refused_openai_key(cfg, monkeypatch):
    monkeypatch.setenv("IMGEN_BASE_URL", "http://127.0.0.1:9")
    hint = st.resolve({"profile": "openai"}).key_hint()
    assert "IMGEN_API_KEY" in hint and "OPENAI_API_KEY" not in hint
