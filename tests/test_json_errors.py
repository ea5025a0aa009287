"""`--json` on failure: stdout holds one JSON document, {"ok": false, "error": {...}}, whatever
failed (the command line, the key, the network, the answer), and stderr still has the text.

Run through the installed command: the document must come from the same process that exits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ERROR_KEYS = {"type", "code", "message", "hint", "exit_code", "status", "request_id"}


def error_document(res) -> dict:
    """The one document on stdout, checked against the schema and against stderr and the exit code."""
    doc = json.loads(res.stdout)  # one document: json.loads refuses anything after it
    assert set(doc) == {"ok", "error"}, doc
    assert doc["ok"] is False
    error = doc["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["exit_code"] == res.returncode
    assert isinstance(error["message"], str) and error["message"]
    first_line = error["message"].splitlines()[0]
    assert f"imgen: error: {first_line}" in res.stderr  # the text is still on stderr
    return error


def test_a_click_usage_error_is_a_json_document(imgen, server):
    res = imgen("generate", "--json", "-n", "two", "x")
    assert res.returncode == 2
    error = error_document(res)
    assert error == {
        "type": "usage", "code": "usage", "message": "-n: 'two' is not a whole number", "hint": "see imgen generate --help",
        "exit_code": 2, "status": None, "request_id": None,
    }
    assert server.requests == []


def test_an_unknown_option_under_json_suggests_the_right_one(imgen, server):
    res = imgen("generate", "x", "--modle", "dall-e-3", "--json")
    error = error_document(res)
    assert error["message"] == "no such option --modle" and error["hint"] == "did you mean --model?"


def test_imgens_own_usage_error_is_a_json_document(imgen, server):
    res = imgen("generate", "--json", "-s", "big", "x")
    assert res.returncode == 2
    error = error_document(res)
    assert error["type"] == "usage" and "--size big" in error["message"]
    assert server.requests == []


def test_a_rejected_key_is_a_json_document(imgen, server):
    res = imgen("generate", "--json", "x", key="sk-wrong-key-0000")
    assert res.returncode == 4
    error = error_document(res)
    assert error["type"] == "auth" and error["code"] == "invalid_api_key" and error["status"] == 401
    assert error["hint"]
    assert "sk-wrong-key-0000" not in res.stdout  # masked, as on stderr


def test_a_closed_port_is_a_network_error_document(imgen):
    res = imgen("generate", "--json", "--retries", "0", "x", env={"IMGEN_BASE_URL": "http://127.0.0.1:9"})
    assert res.returncode == 7
    error = error_document(res)
    assert error["type"] == "network" and error["code"] == "network" and error["status"] is None


def test_an_answer_that_is_not_json_is_a_bad_response_document(imgen, server, outdir):
    server.fault("invalid_json")
    res = imgen("generate", "--json", "x", "-o", str(outdir))
    assert res.returncode == 9
    error = error_document(res)
    assert error["type"] == "bad_response"
    assert list(outdir.iterdir()) == []


def test_without_json_stdout_stays_empty(imgen, server):
    res = imgen("generate", "x", key="sk-wrong-key-0000")
    assert res.returncode == 4 and res.stdout == ""


def test_other_commands_print_the_same_document(imgen, server):
    res = imgen("models", "show", "dall-e-9", "--json")
    assert res.returncode == 2
    assert "did you mean" in error_document(res)["hint"]
    # The group's own --json counts for its commands.
    grouped = imgen("models", "--json", "show", "dall-e-9")
    assert grouped.returncode == 2 and error_document(grouped)["message"] == error_document(res)["message"]


def test_a_config_error_is_a_json_document(imgen):
    path = Path(os.environ["IMGEN_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('default_profile = "nope"\n', encoding="utf-8")
    res = imgen("config", "list", "--json")  # lists, warning about the default: not a failure
    assert res.returncode == 0 and json.loads(res.stdout)["default"] == "nope"
    res = imgen("generate", "--json", "x")
    assert res.returncode == 3
    error = error_document(res)
    assert error["type"] == "config" and "no such profile" in error["message"]


def test_a_batch_failure_is_one_json_line(imgen, server, tmp_path):
    # A batch's --json is JSON Lines: the error is one more line, not an indented document.
    res = imgen("generate", "--batch", str(tmp_path / "missing.txt"), "--json")
    assert res.returncode == 2
    (line,) = res.stdout.splitlines()
    assert json.loads(line)["error"]["type"] == "usage" and "--batch" in json.loads(line)["error"]["message"]
