"""[models."ID"] in the config file: records a user adds, checked like built-in ones."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import IMGEN

CONFIG = """\
[models."my-draft"]
like = "placeholder"
sizes = ["640x480", "480x640"]
n = [1, 3]
note = "drafts"

[models."acme-image-1"]
like = "gpt-image-1"
sizes = ["1024x1024", "2048x1152"]
n = 4
price_per_image = 0.05

[models."acme-ratio"]
dialect = "openai"
ratios = ["1:1", "16:9"]
[models."acme-ratio".fields]
seed = [0, 99]
quality = ["draft", "final"]
"""


def run(*args, config=CONFIG, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(config)
    env = {**os.environ, "IMGEN_CONFIG": str(path), "COMETAPI_KEY": "sk-user-models"}
    proc = subprocess.run([IMGEN, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
    return proc


def test_models_lists_them_as_the_users(tmp_path):
    proc = run("models", "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    models = {m["id"]: m for m in json.loads(proc.stdout)["models"]}
    assert models["my-draft"]["user"] and models["my-draft"]["dialect"] == "placeholder"
    assert models["acme-ratio"]["fields"]["aspect_ratio"]["values"] == ["1:1", "16:9"]
    assert not models["dall-e-3"]["user"]
    table = run("models", tmp_path=tmp_path).stdout
    assert "(your config)" in next(line for line in table.splitlines() if line.startswith("acme-image-1"))


def test_a_user_record_is_checked_like_a_built_in_one(tmp_path):
    bad = run("generate", "-m", "acme-image-1", "-s", "1536x1024", "-n", "5", "--dry-run", "x", tmp_path=tmp_path)
    assert bad.returncode == 2
    assert "--size 1536x1024: acme-image-1 accepts 1024x1024, 2048x1152" in bad.stderr and "-n 5: acme-image-1 accepts 1 to 4" in bad.stderr
    ok = run("generate", "-m", "acme-image-1", "-n", "4", "--aspect", "16:9", "--dry-run", "--json", "x", tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(ok.stdout)
    assert shown["body"]["size"] == "2048x1152" and shown["cost"]["usd"] == pytest.approx(0.2)
    assert "(your model record)" in shown["cost"]["note"]
    ratio = run("generate", "-m", "acme-ratio", "--aspect", "16:9", "--seed", "100", "-Q", "final", "--dry-run", "x", tmp_path=tmp_path)
    assert ratio.returncode == 2 and "--seed 100: acme-ratio accepts 0 to 99" in ratio.stderr


def test_a_record_like_the_placeholder_generates_offline(tmp_path):
    proc = run("generate", "-m", "my-draft", "-n", "2", "--aspect", "3:4", "-o", str(tmp_path / "out"), "a boat", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    assert len(paths) == 2
    head = open(paths[0], "rb").read(24)
    assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == (480, 640)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('[models."x"]\nlike = "dall-e-9"\n', ('(line 2): models."x".like', "'dall-e-9' is not a built-in model")),
        ('[models."x"]\nsizes = ["1x1"]\n', ('(line 1): models."x"', "needs like =")),
        ('\n[models."x"]\nlike = "dall-e-2"\nn = 0\n', ('(line 4): models."x".n', "whole number of 1 or more")),
        ('[models."x"]\ndialect = "soap"\n', ('(line 2): models."x".dialect', "openai, gemini, bria")),
        ('[models."x"]\nlike = "bria"\ncolour = 1\n', ('(line 3): models."x".colour', "is not a key a model takes")),
        ('[models."x"]\nlike = "bria"\n[models."x".fields]\nsampler = [1, 50]\n', ('(line 4): models."x".fields.sampler', "--param")),
        ('[models."x"]\nlike = "bria"\nratios = ["16-9"]\n', ('(line 3): models."x".ratios', "W:H")),
    ],
)
def test_a_malformed_record_is_a_config_error_naming_file_line_and_key(tmp_path, table, words):
    proc = run("generate", "-m", "placeholder", "x", config=table, tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert str(tmp_path / "config.toml") in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
