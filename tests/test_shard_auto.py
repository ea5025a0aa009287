"""`--shard auto`: the share comes from the CI system's own parallel-job variables (docs/ci.md).

Unit tests of each system's variables (GitLab counts from 1, CircleCI and Buildkite from 0) and of
the errors; then batches against the test server: `auto` under GitLab's variables runs exactly the
jobs `--shard 2/2` runs, and shards merged as docs/ci.md says make one complete batch directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import IMGEN
from imgen.batch.jobs import in_shard, parse_shard
from imgen.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
CI_DOC = ROOT / "docs" / "ci.md"
MANIFEST = "imgen-manifest.jsonl"


def auto(env: dict[str, str]) -> tuple[int, int]:
    notes: list[str] = []
    share = parse_shard("auto", env=env, note=notes.append)
    assert notes == [], notes  # a note only when no variable was found
    return share


# --- each CI system's variables -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "share"),
    [
        # GitLab `parallel: 3`: CI_NODE_INDEX is 1..3.
        ({"CI": "true", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (1, 3)),
        ({"CI": "true", "CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}, (3, 3)),
        # CircleCI `parallelism: 3`: CIRCLE_NODE_INDEX is 0..2.
        ({"CI": "true", "CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "3"}, (1, 3)),
        ({"CI": "true", "CIRCLE_NODE_INDEX": "2", "CIRCLE_NODE_TOTAL": "3"}, (3, 3)),
        # Buildkite `parallelism: 2`: BUILDKITE_PARALLEL_JOB is 0..1.
        ({"CI": "true", "BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, (1, 2)),
        ({"CI": "true", "BUILDKITE_PARALLEL_JOB": "1", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, (2, 2)),
        # GitHub Actions, by the documented convention: IMGEN_SHARD=I/N from the matrix.
        ({"CI": "true", "GITHUB_ACTIONS": "true", "IMGEN_SHARD": "2/4"}, (2, 4)),
        ({"IMGEN_SHARD": " 1/1 "}, (1, 1)),
        # IMGEN_SHARD overrides whatever else is set.
        ({"CI": "true", "IMGEN_SHARD": "3/5", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}, (3, 5)),
        # A GitLab job without `parallel:` has CI_NODE_TOTAL=1 and no index: the whole batch.
        ({"CI": "true", "CI_NODE_TOTAL": "1"}, (1, 1)),
        # Surrounding blanks are forgiven, as in --shard ' 1/1 '.
        ({"CI": "true", "CIRCLE_NODE_INDEX": " 1", "CIRCLE_NODE_TOTAL": "2 "}, (2, 2)),
    ],
)
def test_each_ci_systems_variables(env, share):
    assert auto(env) == share


def test_auto_is_not_case_sensitive_and_i_n_still_works():
    assert parse_shard("AUTO", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}) == (2, 2)
    assert parse_shard(" auto ", env={"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "2"}) == (2, 2)
    # An explicit share ignores the environment.
    assert parse_shard("1/3", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}) == (1, 3)


@pytest.mark.parametrize("total", [1, 2, 3, 7])
def test_zero_and_one_based_systems_agree(total):
    """Node k of CircleCI and Buildkite is node k+1 of GitLab: the same share, the same jobs."""
    for k in range(total):
        gitlab = auto({"CI_NODE_INDEX": str(k + 1), "CI_NODE_TOTAL": str(total)})
        circle = auto({"CIRCLE_NODE_INDEX": str(k), "CIRCLE_NODE_TOTAL": str(total)})
        buildkite = auto({"BUILDKITE_PARALLEL_JOB": str(k), "BUILDKITE_PARALLEL_JOB_COUNT": str(total)})
        assert gitlab == circle == buildkite == (k + 1, total)
    keys = [f"{n:064x}" for n in range(50)]
    shares = [auto({"CIRCLE_NODE_INDEX": str(k), "CIRCLE_NODE_TOTAL": str(total)}) for k in range(total)]
    assert sorted(key for share in shares for key in keys if in_shard(key, share)) == keys  # no gaps, no overlap


# --- nothing set ------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}, {"HOME": "/home/me"}])
def test_nothing_set_outside_ci_is_the_whole_batch_with_a_note(env):
    notes: list[str] = []
    assert parse_shard("auto", env=env, note=notes.append) == (1, 1)
    assert len(notes) == 1 and "whole batch" in notes[0]
    for name in ("IMGEN_SHARD", "CI_NODE_INDEX", "CIRCLE_NODE_INDEX", "BUILDKITE_PARALLEL_JOB"):
        assert name in notes[0]


def test_the_note_goes_to_stderr_by_default(capsys, monkeypatch):
    for name in ("IMGEN_SHARD", "CI_NODE_INDEX", "CI_NODE_TOTAL", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL",
                 "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", "CI"):
        monkeypatch.delenv(name, raising=False)
    assert parse_shard("auto") == (1, 1)  # os.environ
    out, err = capsys.readouterr()
    assert out == "" and "imgen: --shard auto:" in err and "(1/1)" in err


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_nothing_set_in_ci_is_an_error(ci):
    with pytest.raises(UsageError) as caught:
        parse_shard("auto", env={"CI": ci, "GITHUB_ACTIONS": "true"}, note=pytest.fail)
    text = f"{caught.value.message} {caught.value.hint}"
    for name in ("CI", "IMGEN_SHARD", "CI_NODE_INDEX/CI_NODE_TOTAL", "CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL",
                 "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT", "matrix.shard", "docs/ci.md"):
        assert name in text


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, ("CI_NODE_INDEX='0'", "CI_NODE_TOTAL='3'", "from 1 to N")),
        ({"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "3"}, ("CI_NODE_INDEX='4'", "GitLab")),
        ({"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "3"}, ("CIRCLE_NODE_INDEX='3'", "from 0 to N-1", "0-based")),
        ({"CIRCLE_NODE_INDEX": "-1", "CIRCLE_NODE_TOTAL": "3"}, ("CIRCLE_NODE_INDEX='-1'",)),
        ({"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, ("BUILDKITE_PARALLEL_JOB='2'", "Buildkite")),
        ({"BUILDKITE_PARALLEL_JOB": "one", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, ("BUILDKITE_PARALLEL_JOB='one'", "whole numbers")),
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "two"}, ("CI_NODE_TOTAL='two'",)),
        ({"CI_NODE_INDEX": "1.0", "CI_NODE_TOTAL": "2"}, ("CI_NODE_INDEX='1.0'",)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "0"}, ("CIRCLE_NODE_TOTAL='0'",)),
        # One of a pair without the other.
        ({"CI_NODE_INDEX": "2"}, ("CI_NODE_INDEX='2'", "CI_NODE_TOTAL=''")),
        ({"CIRCLE_NODE_TOTAL": "4"}, ("CIRCLE_NODE_INDEX=''", "CIRCLE_NODE_TOTAL='4'")),
        # IMGEN_SHARD takes I/N, as --shard does.
        ({"IMGEN_SHARD": "2"}, ("IMGEN_SHARD='2'", "I/N")),
        ({"IMGEN_SHARD": "5/4"}, ("IMGEN_SHARD='5/4'",)),
        ({"IMGEN_SHARD": "auto"}, ("IMGEN_SHARD='auto'",)),
    ],
)
def test_bad_values_are_usage_errors_naming_the_variables(env, named):
    with pytest.raises(UsageError) as caught:
        parse_shard("auto", env={"CI": "true", **env}, note=pytest.fail)
    assert caught.value.message.startswith("--shard auto: ")
    for text in named:
        assert text in caught.value.message


def test_bad_explicit_shares_still_fail():
    for bad in ("0/3", "4/3", "3", "a/b", "autox", ""):
        with pytest.raises(UsageError):
            parse_shard(bad, env={"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1"})


# --- against the test server --------------------------------------------------------------------


def prompts(path: Path, count: int) -> Path:
    path.write_text("".join(f"a lighthouse at dusk, number {i}\n" for i in range(1, count + 1)), encoding="utf-8")
    return path


def ndjson(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_auto_under_gitlab_variables_runs_exactly_the_jobs_of_shard_2_of_2(imgen, server, tmp_path):
    batch = prompts(tmp_path / "p.txt", 12)
    common = ("generate", "--batch", str(batch), "-m", "dall-e-2", "-s", "256x256", "--json")

    explicit = imgen(*common, "-o", str(tmp_path / "explicit"), "--shard", "2/2")
    assert explicit.returncode == 0, explicit.stderr
    wanted = {d["key"]: d["line"] for d in ndjson(explicit.stdout)}
    assert 0 < len(wanted) < 12  # a share, not the whole batch: the comparison below can fail
    sent_before = len(server.api_requests())

    got = imgen(*common, "-o", str(tmp_path / "auto"), "--shard", "auto", "-v",
                env={"CI": "true", "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"})
    assert got.returncode == 0, got.stderr
    ran = {d["key"]: d["line"] for d in ndjson(got.stdout)}
    assert ran == wanted
    assert {d["status"] for d in ndjson(got.stdout)} == {"ok"}
    assert len(server.api_requests()) - sent_before == len(wanted)
    assert f"shard 2/2: {len(wanted)} of 12 jobs" in got.stderr
    assert sorted(p.name for p in (tmp_path / "auto").glob("*.png")) == sorted(p.name for p in (tmp_path / "explicit").glob("*.png"))


def test_auto_in_ci_without_variables_sends_nothing(imgen, server, tmp_path):
    batch = prompts(tmp_path / "p.txt", 3)
    res = imgen("generate", "--batch", str(batch), "-m", "dall-e-2", "-o", str(tmp_path / "out"), "--shard", "auto",
                env={"CI": "true"})
    assert res.returncode == 2, res.stderr
    assert "--shard auto: CI is set but none of IMGEN_SHARD" in res.stderr and "hint:" in res.stderr
    assert server.requests == []
    assert not (tmp_path / "out").exists()


def test_auto_outside_ci_runs_the_whole_batch(imgen, server, tmp_path):
    batch = prompts(tmp_path / "p.txt", 5)
    res = imgen("generate", "--batch", str(batch), "-m", "dall-e-2", "-s", "256x256", "-o", str(tmp_path / "out"),
                "--shard", "auto", "--json")
    assert res.returncode == 0, res.stderr
    assert len(ndjson(res.stdout)) == 5 and len(server.api_requests()) == 5
    assert "running the whole batch (1/1)" in res.stderr


def merge_commands() -> str:
    """The shell block of docs/ci.md's "Merging the shards" section: the commands a reader copies."""
    text = CI_DOC.read_text(encoding="utf-8")
    section = text.split("## Merging the shards", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert found, "docs/ci.md: no sh block under 'Merging the shards'"
    return found.group(1)


def test_shards_merged_as_docs_ci_says_make_one_complete_batch(imgen, server, tmp_path):
    batch = tmp_path / "assets.jsonl"
    lines = [{"prompt": f"product shot {i}"} for i in range(8)] + [{"prompt": f"icon {i}", "output": "icons"} for i in range(4)]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    common = ("generate", "--batch", str(batch), "-m", "dall-e-2", "-s", "256x256", "--sidecar", "--json")
    made: dict[str, list[str]] = {}
    for node in (1, 2, 3):  # three GitLab instances, each in its own workspace, as on three machines
        res = imgen(*common, "-o", str(tmp_path / "shards" / str(node)), "--shard", "auto",
                    env={"CI": "true", "CI_NODE_INDEX": str(node), "CI_NODE_TOTAL": "3"})
        assert res.returncode == 0, res.stderr
        for record in ndjson(res.stdout):
            made[record["key"]] = record["files"]
    assert len(made) == 12
    assert len(server.api_requests()) == 12

    env = dict(os.environ, PATH=f"{Path(IMGEN).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    merged = subprocess.run(["bash", "-euo", "pipefail", "-c", merge_commands()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    assets = tmp_path / "assets"
    records = [json.loads(line) for line in (assets / MANIFEST).read_text(encoding="utf-8").splitlines() if line.strip()]
    assert {r["key"] for r in records} == set(made)
    assert len(list(assets.rglob("*.png"))) == 12 and len(list((assets / "icons").glob("*.png"))) == 4

    # The merged directory is a finished batch: nothing is sent again, every job is skipped.
    again = imgen(*common, "-o", str(assets))
    assert again.returncode == 0, again.stderr
    assert [d["status"] for d in ndjson(again.stdout)] == ["skipped"] * 12
    assert len(server.api_requests()) == 12

    # And the gallery the docs build shows every shard's images with their prompts.
    gallery = imgen("gallery", "-r", "--json", str(assets))
    assert gallery.returncode == 0, gallery.stderr
    page = json.loads(gallery.stdout)
    assert page["images"] == 12 and page["with_prompts"] == 12
    assert {e["prompt"] for e in page["entries"]} == {line["prompt"] for line in lines}
