"""Batch building blocks without a server: parsing, keys, shards, the manifest, the budget."""

import json
import threading
import time
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgen.batch import jobs, manifest
from imgen.batch import runner as batch
from imgen.errors import ExitCode, RequestRejected, UsageError
from imgen.files import writer as save

# --- parsing --------------------------------------------------------------------------------


def test_plain_lines_skip_blanks_and_comments():
    specs, problems = jobs.parse("\ufeffa red fox\n\n  # not a prompt\n  a blue bird  \n")
    assert problems == []
    assert [(s.line, s.prompt) for s in specs] == [(1, "a red fox"), (4, "a blue bird")]


def test_jsonl_fields_and_batch_keys():
    text = "\n".join(
        [
            "# header comment",
            json.dumps({"prompt": "p", "model": "dall-e-2", "n": 2, "compression": 50, "guidance": 5, "name": "x", "output": "sub"}),
            json.dumps({"prompt": "q", "image": "ref.png", "params": {"seed": 1}, "sequential": True, "max_images": 3}),
            json.dumps({"prompt": "r", "size": None, "watermark": False}),
        ]
    )
    specs, problems = jobs.parse(text)
    assert problems == []
    first, second, third = specs
    assert (first.line, first.model, first.name, first.output) == (2, "dall-e-2", "x", "sub")
    assert first.fields == {"n": 2, "output_compression": 50, "guidance_scale": 5}
    assert second.images == ["ref.png"] and second.params == {"seed": 1}
    assert second.fields == {"sequential_image_generation": "auto", "sequential_image_generation_options": {"max_images": 3}}
    assert third.fields == {"size": None, "watermark": False}  # null clears a command-line default


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"prompt": "x", "sise": "1"}', "unknown key 'sise' (did you mean 'size'?); allowed: prompt,"),
        ('{"prompt": "x", "n": "2"}', 'n "2" must be a whole number'),
        ('{"prompt": "x", "watermark": "no"}', "watermark \"no\" must be true or false"),
        ('{"prompt": "x", "image": [1]}', "must be a file or URL"),
        ('{"prompt": "x", "params": []}', "params [] must be an object"),
        ('{"n": 1}', "no prompt"),
        ('{"prompt": "  "}', "the prompt is empty"),
        ('{"prompt": "x", "name": "a/b"}', "must be a plain file name"),
        ('{"prompt": "x"', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_jsonl_problems_name_the_line(line, expected):
    specs, problems = jobs.parse('{"prompt": "fine"}\n' + line + "\n")
    assert len(problems) == 1 and problems[0].startswith("line 2: ")
    assert expected in problems[0]
    assert [s.line for s in specs] == [1]


def test_mixed_file_is_refused_rather_than_sent_as_prompts():
    specs, problems = jobs.parse('{"prompt": "a"}\nplain text\n')
    assert [s.prompt for s in specs] == ["a"]
    assert problems == ['line 2: not a JSON object, but other lines are; write it as {"prompt": "..."}']


# --- keys and shards ----------------------------------------------------------------------


def key(**kw):
    base = {"dialect": "openai", "base_url": "https://api.example", "model": "m", "fields": {}, "params": {}, "prompt": "p"}
    return jobs.job_key(**{**base, **kw})


def test_key_is_stable_and_ignores_field_order():
    a = key(fields={"n": 2, "size": "1024x1024"}, params={"seed": 3})
    b = key(fields={"size": "1024x1024", "n": 2}, params={"seed": 3})
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    assert a == key(fields={"n": 2, "size": "1024x1024", "seed": 3})  # as in the body: fields + params
    assert key(fields={"guidance_scale": 5}) == key(fields={"guidance_scale": 5.0})
    assert key(base_url="https://api.example/") == key()
    assert key(fields={"style": None}) == key()


@pytest.mark.parametrize(
    "change",
    [{"dialect": "envelope"}, {"base_url": "https://other"}, {"model": "n"}, {"prompt": "q"}, {"fields": {"n": 2}}, {"params": {"x": 1}}],
)
def test_key_changes_with_what_is_asked(change):
    assert key(**change) != key()


def test_parse_shard():
    assert jobs.parse_shard("2/3") == (2, 3)
    assert jobs.parse_shard(" 1/1 ") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "-1/2", ""):
        with pytest.raises(UsageError):
            jobs.parse_shard(bad)


@given(st.lists(st.text(min_size=1), min_size=1, max_size=40, unique=True), st.integers(min_value=1, max_value=7))
def test_shards_partition_any_set_of_jobs(prompts, count):
    keys = [key(prompt=p) for p in prompts]
    owners = [[i for i in range(1, count + 1) if jobs.in_shard(k, (i, count))] for k in keys]
    assert all(len(o) == 1 for o in owners)  # each job in exactly one shard
    assert all(jobs.in_shard(k, None) for k in keys)


# --- the manifest -----------------------------------------------------------------------


def record(key_, status="ok", path="a.png", sha="0" * 64):
    return {"format": 1, "key": key_, "status": status, "images": [{"path": path, "sha256": sha}]}


def test_manifest_read_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    lines = [json.dumps(record("k1")), json.dumps(record("k2")), json.dumps(record("k3"))[:25]]
    path.write_text("\n".join(lines), encoding="utf-8")
    records, warnings = manifest.read(path)
    assert set(records) == {"k1", "k2"} and warnings == []


def test_manifest_read_warns_about_damage_in_the_middle_and_keeps_the_latest_ok(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    lines = [json.dumps(record("k1", path="old.png")), "garbage", json.dumps(record("k1", path="new.png")), json.dumps(record("k1", status="failed"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, warnings = manifest.read(path)
    assert records["k1"]["images"][0]["path"] == "new.png"
    assert len(warnings) == 1 and "line 2" in warnings[0]


def test_manifest_append_after_a_torn_line_starts_a_new_line(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    path.write_bytes(json.dumps(record("k1")).encode() + b"\n" + b'{"key": "k2", "sta')
    writer = manifest.Manifest(path)
    writer.append(record("k3"))
    writer.append(record("k4"))
    writer.close()
    records, _ = manifest.read(path)
    assert set(records) == {"k1", "k3", "k4"}
    assert path.read_bytes().endswith(b"\n")


def test_manifest_appends_whole_lines_from_many_threads(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    writer = manifest.Manifest(path)
    threads = [threading.Thread(target=lambda i=i: writer.append(record(f"k{i}", path="é" * 500))) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40 and all(json.loads(line)["key"] for line in lines)


def test_verified_files_need_every_file_with_its_hash(tmp_path):
    (tmp_path / "a.png").write_bytes(b"abc")
    good = record("k", sha=manifest.file_sha256(tmp_path / "a.png"))
    assert manifest.verified_files(good, tmp_path) == [tmp_path / "a.png"]
    assert manifest.verified_files(record("k"), tmp_path) is None  # hash differs
    assert manifest.verified_files(record("k", path="missing.png"), tmp_path) is None
    assert manifest.verified_files({"key": "k", "images": []}, tmp_path) is None


# --- budget, limit, exit code ---------------------------------------------------------------


def fake_job(line, images=1, cost=None):
    return SimpleNamespace(line=line, images=images, cost=cost)


def test_budget_stops_at_the_first_job_that_would_go_over():
    todo = [fake_job(1, 2), fake_job(2, 2), fake_job(3, 1), fake_job(4, 1)]
    run, left, note = batch.apply_budget(todo, 5, None)
    assert [j.line for j in run] == [1, 2, 3] and [j.line for j in left] == [4]
    run, left, note = batch.apply_budget(todo, 4, None)
    assert [j.line for j in run] == [1, 2] and [j.line for j in left] == [3, 4]
    assert note == "--max-total-images 4 reached: 2 jobs (4 images) fit; 2 left undone, from line 3 on"
    assert batch.apply_budget(todo, None, None) == (todo, [], None)


def test_cost_budget_allows_an_exact_fit():
    todo = [fake_job(i, 1, 0.04) for i in range(1, 6)]
    run, left, note = batch.apply_budget(todo, None, 0.12)
    assert len(run) == 3 and len(left) == 2 and "$0.1200" in note


def test_adaptive_limit_halves_once_per_burst_and_recovers_gradually():
    limit = batch.AdaptiveLimit(8)
    limit.slow_down(time.monotonic() + 1)
    limit.slow_down(time.monotonic() + 1)  # the same burst: no second cut
    assert limit.limit == 4
    cancelled = threading.Event()
    for _ in range(4):
        assert limit.acquire(cancelled)
        limit.release(True)
    assert limit.limit == 5
    for _ in range(5 + 6 + 7 + 8):
        limit.acquire(cancelled)
        limit.release(True)
    assert limit.limit == 8  # never above the ceiling


def test_adaptive_limit_blocks_at_the_limit():
    limit = batch.AdaptiveLimit(2)
    cancelled = threading.Event()
    assert limit.acquire(cancelled) and limit.acquire(cancelled)
    got = []
    waiter = threading.Thread(target=lambda: got.append(limit.acquire(cancelled)))
    waiter.start()
    time.sleep(0.3)
    assert got == []
    limit.release(True)
    waiter.join(2)
    assert got == [True]


def result(status, line=1, error=None):
    return SimpleNamespace(status=status, job=SimpleNamespace(line=line), error=error)


def test_exit_codes():
    rejected = RequestRejected("no")
    assert batch.exit_code([result("ok"), result("skipped")], left=False) == ExitCode.OK
    assert batch.exit_code([result("ok"), result("failed", error=rejected)], left=False) == ExitCode.PARTIAL
    assert batch.exit_code([result("skipped"), result("failed", error=rejected)], left=False) == ExitCode.PARTIAL
    assert batch.exit_code([result("failed", 2, UsageError("x")), result("failed", 1, rejected)], left=False) == ExitCode.REJECTED
    assert batch.exit_code([result("ok")], left=True) == ExitCode.PARTIAL
    assert batch.exit_code([], left=False) == ExitCode.OK


# --- checked jobs -----------------------------------------------------------------------------


def plan(text, tmp_path, **defaults):
    specs, problems = jobs.parse(text)
    assert problems == []
    base = {"flags": {"model": "placeholder"}, "fields": {}, "params": {}}
    return jobs.plan_all(specs, jobs.Defaults(**{**base, **defaults}), tmp_path / "out", tmp_path)


def test_names_are_fixed_by_the_job(tmp_path):
    planned, problems, _ = plan('{"prompt": "a red fox"}\n{"prompt": "b", "name": "hen.png", "n": 2, "output": "sub"}\n', tmp_path)
    assert problems == []
    fox, hen = planned
    assert fox.stem == f"a-red-fox-{fox.key[:8]}" and fox.plan.template.endswith(".{ext}") and jobs.file_names(fox) == [fox.stem]
    assert hen.stem == "hen" and jobs.file_names(hen) == ["hen-1", "hen-2"]
    assert hen.directory == tmp_path / "out" / "sub"
    assert fox.plan.overwrite and hen.plan.overwrite  # a job replaces its own names


def test_repeated_lines_run_once_and_clashing_names_are_refused(tmp_path):
    planned, problems, warnings = plan("same\nsame\nother\n", tmp_path)
    assert [j.line for j in planned] == [1, 3]
    assert warnings == ["line 2 repeats line 1 (same prompt and options): it runs once"]
    text = '{"prompt": "a", "name": "x"}\n{"prompt": "a", "name": "y"}\n{"prompt": "b", "name": "X"}\n{"prompt": "c", "name": "x", "output": "elsewhere"}\n'
    planned, problems, _ = plan(text, tmp_path)
    assert [j.line for j in planned] == [1, 4]
    assert problems[0].startswith("line 2: the same request as line 1 under another name")
    assert problems[1].startswith("line 3: would write the same files as line 1")


def test_command_line_options_are_defaults_and_null_clears_them(tmp_path):
    text = '{"prompt": "a"}\n{"prompt": "b", "size": "32x32"}\n{"prompt": "c", "size": null}\n'
    planned, problems, _ = plan(text, tmp_path, fields={"size": "16x16"})
    assert problems == []
    assert [j.plan.request.fields.get("size") for j in planned] == ["16x16", "32x32", None]


def test_cancel_after_the_api_call_drops_spooled_images(tmp_path, monkeypatch):
    # Ctrl-C while the API worked: the job saves nothing, so what its response spooled must go.
    aborted = []
    spool = SimpleNamespace(abort=lambda: aborted.append(True))
    response = SimpleNamespace(items=[SimpleNamespace(spooled=spool)])
    runner = batch.Runner.__new__(batch.Runner)
    runner.cancelled, runner.state, runner.saving = threading.Event(), threading.Condition(), 0
    runner.root, runner.connections = tmp_path, None
    runner.report = SimpleNamespace(detail=lambda text: None)

    def call_api(plan, hooks, connections, resume=None):
        runner.cancelled.set()
        return response

    monkeypatch.setattr(batch.pipeline, "call_api", call_api)
    assert runner._one(SimpleNamespace(plan=None, line=1, resume=None)) is None
    assert aborted == [True] and response.items[0].spooled is None


def test_sidecar_write_failure_is_a_write_error(tmp_path):
    # An OSError escaping here would end the batch as an internal error (exit 1).
    (tmp_path / "fox.png").write_bytes(b"x")
    (tmp_path / "fox.png.json").mkdir()  # refuses the replace, whoever runs the test
    record = {"key": "k", "prompt": "a fox", "images": [{"path": "fox.png", "sha256": "0" * 64}]}
    with pytest.raises(save.WriteError, match="fox.png.json"):
        manifest.write_sidecars(record, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".imgen-")] == []


def test_lines_sharing_a_reference_file_share_one_data_uri(tmp_path):
    from fakeserver import make_image

    (tmp_path / "ref.png").write_bytes(make_image("ref").to_bytes())
    (tmp_path / "sub").mkdir()
    lines = [{"prompt": f"p{i}", "image": "ref.png"} for i in range(3)] + [{"prompt": "p3", "image": str(tmp_path / "sub" / ".." / "ref.png")}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    planned, problems, _ = plan(text, tmp_path, flags={"model": "doubao-seedream-5-0-260128"})
    assert problems == []
    uris = [job.plan.request.fields["image"][0] for job in planned]
    assert uris[0].startswith("data:image/png;base64,")
    assert all(uri is uris[0] for uri in uris)  # one string in memory, not one per line
