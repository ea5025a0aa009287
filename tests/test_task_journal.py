"""The task journal: what it stores, how it folds, and that no writer, crash or compaction loses a task."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import API_KEY
from imgen.errors import ExitCode
from imgen.tasks.journal import JOURNAL_NAME, MAX_LINE, AmbiguousId, Journal, JournalError, TaskRecord, default_path

NOW = "2030-01-01T00:00:00+00:00"  # far ahead, so compact() never finds these old


def task(task_id: str = "task-1", **changes) -> TaskRecord:
    values = dict(id=task_id, dialect="flux", profile="default", base_url="https://api.example/v1", model="flux-pro", prompt="a lighthouse",
                  created=NOW)
    return TaskRecord(**(values | changes))


def lines_of(path: Path) -> list[dict]:
    """Every line of the file, each a complete JSON object: nothing torn, nothing run together."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


@pytest.fixture
def journal(tmp_path) -> Journal:
    return Journal(tmp_path / "state" / JOURNAL_NAME)


# --- records --------------------------------------------------------------------------------------


def test_every_field_round_trips(journal):
    record = task(
        "mj-123456789", dialect="midjourney", state="submitted", job_key="job-7", updated="2030-01-01T00:00:01+00:00", detail="queued",
        output={"directory": "/tmp/out", "file_name": None, "stdout": False, "template": "{prompt}-{n}", "overwrite": True},
        extra={"parent": "mj-1", "action": "U1", "polling_url": "https://x.example/poll?id=1"},
        request={"fields": {"prompt": "ünïcødé 🌊", "n": 1}, "params": {"aspect_ratio": "16:9", "seed": 5}},
    )
    journal.add(record)
    assert journal.get(record.id) == record
    assert Journal(journal.path).get(record.id) == record  # another process's view
    [line] = lines_of(journal.path)
    assert line["v"] == 1 and line["op"] == "add"


def test_add_stamps_updated_when_the_record_has_none(journal):
    journal.add(task())
    assert journal.get("task-1").updated.endswith("+00:00")


def test_a_numeric_id_is_stored_as_a_string(journal):
    journal.add(task(1234567))
    assert lines_of(journal.path)[0]["id"] == "1234567"
    assert journal.get("1234567").id == "1234567"
    assert journal.get(1234567).id == "1234567"


def test_add_refuses_a_record_without_id_or_with_an_unknown_state(journal):
    with pytest.raises(ValueError):
        journal.add(task(""))
    with pytest.raises(ValueError):
        journal.add(task(state="running"))
    assert not journal.path.exists()


def test_keys_are_dropped_from_request_and_extra_at_any_depth(journal):
    journal.add(task(
        request={"fields": {"prompt": "p"}, "params": {"api_key": API_KEY, "Authorization": f"Bearer {API_KEY}", "seed": 1,
                                                        "nested": [{"X-Api-Key": API_KEY, "keep": 1}], "max_tokens": 5}},
        extra={"KEY": API_KEY, "apiKey": API_KEY, "access_token": API_KEY, "Token": API_KEY, "polling_url": "https://x.example/p"},
    ))
    assert API_KEY.encode() not in journal.path.read_bytes()
    got = journal.get("task-1")
    assert got.request == {"fields": {"prompt": "p"}, "params": {"seed": 1, "nested": [{"keep": 1}], "max_tokens": 5}}
    assert got.extra == {"polling_url": "https://x.example/p"}


def test_a_request_too_large_for_a_line_gives_way_and_the_task_is_kept(journal):
    journal.add(task(request={"fields": {"prompt": "x" * (2 * MAX_LINE)}}))
    got = journal.get("task-1")
    assert got is not None and "omitted" in got.request
    with pytest.raises(ValueError):
        journal.add(task("task-2", prompt="x" * (2 * MAX_LINE)))
    assert journal.get("task-2") is None


# --- fold: update, forget, lookup -----------------------------------------------------------------


def test_updates_fold_later_state_and_detail_win(journal):
    journal.add(task(detail="queued"))
    journal.update("task-1", "failed", "moderated")
    journal.update("task-1", "done", "/out/a.png\n/out/b.png")
    got = journal.get("task-1")
    assert (got.state, got.detail) == ("done", "/out/a.png\n/out/b.png")
    unchanged = dataclasses.replace(got, state="submitted", detail="queued", updated="")
    assert unchanged == dataclasses.replace(task(detail="queued"), updated="")
    assert [line["op"] for line in lines_of(journal.path)] == ["add", "update", "update"]


def test_update_of_an_unknown_id_is_a_no_op(journal):
    journal.update("nobody", "done")
    assert not journal.path.exists()
    journal.add(task())
    size = journal.path.stat().st_size
    journal.update("nobody", "done")
    journal.update("task", "done")  # a prefix is not an id
    assert journal.path.stat().st_size == size
    with pytest.raises(ValueError):
        journal.update("task-1", "running")


def test_forget_hides_the_task_and_says_whether_it_knew_it(journal):
    journal.add(task())
    assert journal.forget("task-1") is True
    assert journal.forget("task-1") is False
    assert journal.forget("nobody") is False
    assert journal.get("task-1") is None and journal.all() == []
    journal.update("task-1", "done")  # forgotten: as unknown
    assert [line["op"] for line in lines_of(journal.path)] == ["add", "forget"]
    journal.add(task())  # submitted again: known again
    assert journal.get("task-1").state == "submitted"


def test_a_unique_prefix_finds_a_task_and_an_ambiguous_one_lists_the_candidates(journal):
    for task_id in ("abc123", "abc456", "abd", "xyz"):
        journal.add(task(task_id))
    assert journal.get("abc1").id == "abc123"
    assert journal.get("x").id == "xyz"
    assert journal.get("nope") is None and journal.get("") is None
    with pytest.raises(AmbiguousId) as caught:
        journal.get("abc")
    assert isinstance(caught.value, ValueError)
    assert caught.value.candidates == ["abc123", "abc456"]
    assert "abc123" in str(caught.value) and "abc456" in str(caught.value)
    journal.add(task("ab"))
    assert journal.get("ab").id == "ab"  # an exact id wins over the ids it starts
    journal.forget("abc456")
    assert journal.get("abc").id == "abc123"  # forgotten ids are no candidates


def test_all_is_newest_first_and_in_flight_filters_by_state_and_job_key(journal):
    journal.add(task("old", created="2030-01-01T00:00:00+00:00", job_key="a"))
    journal.add(task("new", created="2030-01-03T00:00:00+00:00", job_key="a"))
    journal.add(task("mid", created="2030-01-02T00:00:00+00:00", job_key="b"))
    journal.add(task("solo", created="2030-01-02T00:00:00+00:00"))
    journal.update("mid", "done")
    assert [r.id for r in journal.all()] == ["new", "solo", "mid", "old"]  # a tie: the later added first
    assert [r.id for r in journal.in_flight()] == ["new", "solo", "old"]
    assert [r.id for r in journal.in_flight("a")] == ["new", "old"]
    assert journal.in_flight("b") == [] and journal.in_flight("c") == []


def test_a_missing_journal_is_empty(tmp_path):
    journal = Journal(tmp_path / "nowhere" / JOURNAL_NAME)
    assert journal.all() == [] and journal.get("x") is None and journal.forget("x") is False
    journal.compact()
    assert not journal.path.parent.exists()


# --- damage -----------------------------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_on_a_fresh_line(journal):
    journal.add(task("first"))
    with open(journal.path, "ab") as fh:
        fh.write(b'{"v":1,"op":"add","id":"torn","dialect":"fl')
    assert [r.id for r in journal.all()] == ["first"]
    journal.add(task("second"))
    raw = journal.path.read_bytes().split(b"\n")
    assert raw[1].endswith(b'"dialect":"fl') and json.loads(raw[2])["id"] == "second"
    assert {r.id for r in journal.all()} == {"first", "second"}


def test_garbage_in_the_middle_hides_nothing_and_unknown_keys_are_ignored(journal):
    journal.add(task("a"))
    with open(journal.path, "ab") as fh:
        fh.write(b"not json\n\n[1, 2]\n\xff\xfe\n" + b'{"op": "add"}\n{"v": 1, "op": "rename", "id": "a"}\n')
        fh.write(b'{"v": 1, "op": "update", "id": "a", "state": "done", "color": "blue"}\n')
        future = {"v": 2, "op": "add", "id": "b", "dialect": "flux", "prompt": 7, "created": NOW, "future": {"x": 1}}
        fh.write(json.dumps(future).encode() + b"\n")
    journal.add(task("c"))
    assert journal.get("a").state == "done"
    assert journal.get("b").prompt == "" and journal.get("b").dialect == "flux"  # a wrongly typed value: the default
    assert {r.id for r in journal.all()} == {"a", "b", "c"}


def test_a_line_above_the_limit_is_skipped(journal):
    journal.add(task("before"))
    with open(journal.path, "ab") as fh:
        fh.write(json.dumps({"v": 1, "op": "add", "id": "huge", "prompt": "x" * (MAX_LINE + 10)}).encode() + b"\n")
    journal.add(task("after"))
    assert {r.id for r in journal.all()} == {"before", "after"}


# --- concurrency -------------------------------------------------------------------------------------


def test_threads_lose_nothing(journal):
    shared = Journal(journal.path)

    def work(worker: int) -> None:
        mine = shared if worker % 2 else Journal(journal.path)  # callers usually make their own
        for n in range(25):
            mine.add(task(f"t{worker}-{n}", prompt="p" * 300))
            if n % 5 == 0:
                mine.update(f"t{worker}-{n}", "done", "saved")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = lines_of(journal.path)
    assert len(lines) == 16 * 25 + 16 * 5
    records = journal.all()
    assert len(records) == 400
    assert sum(r.state == "done" for r in records) == 80


CHILD = """
import sys
from pathlib import Path
from imgen.tasks.journal import Journal, TaskRecord

path, who, count, finish = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "finish"
for n in range(count):
    Journal(path).add(TaskRecord(id=f"{who}-{n}", dialect="flux", profile="p", base_url="u", model="m", prompt="x" * 2000,
                                 created="2030-01-01T00:00:00+00:00", request={"n": n}))
    if finish:
        Journal(path).update(f"{who}-{n}", "done", "saved")
"""


def start_children(path: Path, processes: int, each: int, finish: bool = False) -> list[subprocess.Popen]:
    how = "finish" if finish else "add"
    return [subprocess.Popen([sys.executable, "-c", CHILD, str(path), f"p{i}", str(each), how]) for i in range(processes)]


def wait_for(children: list[subprocess.Popen]) -> None:
    for child in children:
        assert child.wait(timeout=60) == 0


def test_processes_lose_nothing(journal):
    wait_for(start_children(journal.path, 8, 50))
    lines = lines_of(journal.path)
    assert len(lines) == 400
    assert {line["id"] for line in lines} == {f"p{i}-{n}" for i in range(8) for n in range(50)}
    assert len(journal.all()) == 400


def test_appends_racing_compactions_survive(journal):
    journal.add(task("seed"))
    children = start_children(journal.path, 4, 60, finish=True)  # each update leaves a line to fold away
    replaced = 0
    while any(child.poll() is None for child in children):
        before = journal.path.stat().st_ino
        journal.compact()
        replaced += journal.path.stat().st_ino != before
        time.sleep(0.005)  # compactions are occasional; back to back they would starve the appenders
    wait_for(children)
    journal.compact()
    records = journal.all()
    assert {r.id for r in records} == {"seed"} | {f"p{i}-{n}" for i in range(4) for n in range(60)}
    assert all(r.state == "done" for r in records if r.id != "seed")
    assert len(lines_of(journal.path)) == 241
    assert replaced > 0
    print(f"{replaced} compactions replaced the file under the appenders")


def test_compact_leaves_a_compact_file_alone(journal):
    journal.add(task("a"))
    journal.add(task("b"))
    before = journal.path.stat().st_ino
    journal.compact()
    assert journal.path.stat().st_ino == before
    journal.update("a", "done")
    journal.compact()
    assert journal.path.stat().st_ino != before and len(lines_of(journal.path)) == 2


def test_a_writer_that_locked_the_replaced_file_reopens_the_new_one(journal):
    fcntl = pytest.importorskip("fcntl")
    journal.add(task("a"))
    old = os.open(journal.path, os.O_RDWR)
    fcntl.flock(old, fcntl.LOCK_EX)  # as a compaction does, while a writer waits
    writer = threading.Thread(target=journal.add, args=(task("b"),))
    writer.start()
    time.sleep(0.3)  # let it open the old file and block on its lock
    new = journal.path.with_name("new.part")
    new.write_bytes(journal.path.read_bytes())
    os.replace(new, journal.path)
    os.close(old)  # the lock goes with it
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert {line["id"] for line in lines_of(journal.path)} == {"a", "b"}


# --- compaction --------------------------------------------------------------------------------------


def test_compact_keeps_live_tasks_and_drops_forgotten_and_old_finished_ones(journal):
    journal.add(task("flying", detail="queued", job_key="j", extra={"parent": "p"}))
    journal.add(task("old-but-flying", created="2000-01-01T00:00:00+00:00", updated="2000-01-01T00:00:00+00:00"))
    journal.add(task("recent-done"))
    journal.update("recent-done", "done", "/out/x.png")
    journal.add(task("old-done", state="done", created="2000-01-01T00:00:00+00:00", updated="2000-01-02T00:00:00+00:00"))
    journal.add(task("old-failed", state="failed", created="2000-01-01T00:00:00+00:00", updated="2000-01-02T00:00:00+00:00"))
    journal.add(task("undated", state="expired", created="?", updated="?"))
    journal.add(task("gone"))
    journal.forget("gone")
    with open(journal.path, "ab") as fh:
        fh.write(b'{"v": 1, "op": "update", "id": "flying", "state": "submitted", "detail": "50%", "future": 1}\ngarbage')
    before = {r.id: r for r in journal.all()}
    journal.compact()
    lines = lines_of(journal.path)
    assert [line["id"] for line in lines] == ["flying", "old-but-flying", "recent-done", "undated"]
    assert all(line["op"] == "add" and line["v"] == 1 for line in lines)
    assert {r.id: r for r in journal.all()} == {k: v for k, v in before.items() if k in {line["id"] for line in lines}}
    assert journal.get("flying").detail == "50%" and journal.get("recent-done").state == "done"
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert [p.name for p in journal.path.parent.iterdir()] == [JOURNAL_NAME]  # no temp file left
    journal.add(task("later"))
    assert journal.get("later") is not None


def test_compact_keeps_keys_it_does_not_know(journal):
    journal.path.parent.mkdir(mode=0o700)
    journal.path.write_bytes(json.dumps({"v": 1, "op": "add", "id": "a", "created": NOW, "future": {"x": 1}}).encode() + b"\n")
    journal.compact()
    assert lines_of(journal.path)[0]["future"] == {"x": 1}


# --- the file itself -----------------------------------------------------------------------------------


def test_directory_is_0700_and_file_0600_whatever_the_umask(tmp_path):
    journal = Journal(tmp_path / "a" / "state" / JOURNAL_NAME)
    old = os.umask(0)
    try:
        journal.add(task())
    finally:
        os.umask(old)
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


def test_a_too_open_existing_file_is_made_private(journal):
    journal.path.parent.mkdir(mode=0o700)
    journal.path.touch()
    journal.path.chmod(0o644)
    journal.add(task())
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_path_is_refused_and_its_target_untouched(tmp_path, dangling):
    target = tmp_path / "precious.txt"
    if not dangling:
        target.write_text("precious\n")
        target.chmod(0o644)
    link = tmp_path / "state" / JOURNAL_NAME
    link.parent.mkdir()
    link.symlink_to(target)
    journal = Journal(link)
    for call in (lambda: journal.add(task()), journal.all, lambda: journal.get("x"), journal.compact):
        with pytest.raises(JournalError) as caught:
            call()
        assert str(link) in caught.value.message and "symbolic link" in caught.value.message
    assert link.is_symlink()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_journal_that_is_not_a_regular_file_is_refused(journal, kind):
    journal.path.parent.mkdir()
    journal.path.mkdir() if kind == "directory" else os.mkfifo(journal.path)
    for call in (lambda: journal.add(task()), journal.all):
        with pytest.raises(JournalError, match="not a regular file"):
            call()


def test_an_unwritable_journal_is_a_config_error_naming_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    journal = Journal(tmp_path / "file" / "state" / JOURNAL_NAME)
    with pytest.raises(JournalError) as caught:
        journal.add(task())
    error = caught.value
    assert error.exit_code == ExitCode.CONFIG and str(journal.path) in error.message and "IMGEN_STATE_DIR" in error.hint


def test_imgen_state_dir_replaces_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGEN_STATE_DIR", str(tmp_path / "st"))
    assert default_path() == tmp_path / "st" / JOURNAL_NAME
    Journal().add(task())
    assert Journal(tmp_path / "st" / JOURNAL_NAME).get("task-1") is not None
    monkeypatch.delenv("IMGEN_STATE_DIR")
    import platformdirs

    assert default_path() == platformdirs.user_state_path("imgen") / JOURNAL_NAME


def test_reading_ten_thousand_records_is_quick(journal):
    journal.path.parent.mkdir(mode=0o700)
    with open(journal.path, "wb") as fh:
        for n in range(10_000):
            record = {"v": 1, "op": "add", "id": f"{n:08d}-{'f' * 24}", "dialect": "midjourney", "profile": "default", "base_url": "https://x/v1",
                      "model": "mj", "prompt": f"prompt {n} " * 10, "created": NOW, "state": "submitted", "output": {"directory": "/tmp"},
                      "extra": {}, "request": {"fields": {"n": 1}, "params": {}}, "job_key": None, "updated": NOW, "detail": ""}
            fh.write(json.dumps(record).encode() + b"\n")
            if n % 3 == 0:
                update = {"v": 1, "op": "update", "id": record["id"], "state": "done", "detail": "", "updated": NOW}
                fh.write(json.dumps(update).encode() + b"\n")
    started = time.perf_counter()
    records = journal.all()
    found = journal.get("00004242")
    elapsed = time.perf_counter() - started
    assert len(records) == 10_000 and found.id.startswith("00004242")
    print(f"all() + get() over 10,000 records: {elapsed:.3f} s")
