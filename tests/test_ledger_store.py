"""The history and cost ledger: round trips, queries, search with and without FTS5, totals,
migrations, failure modes (locked, corrupt, symlinked, unwritable, newer), privacy and load."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import API_KEY
from imgen.errors import ExitCode
from imgen.ledger import store
from imgen.ledger.store import SCHEMA_VERSION, GenerationRow, ImageRow, Ledger, LedgerError


def make(**overrides) -> GenerationRow:
    values = dict(
        time="2026-05-01T10:00:00+00:00",
        duration=2.5,
        status="ok",
        exit_code=0,
        profile="default",
        host="api.cometapi.com",
        dialect="openai",
        model="gpt-image-1",
        prompt="a red fox in the snow",
    )
    values.update(overrides)
    return GenerationRow(**values)


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "data" / "imgen" / store.LEDGER_NAME


@pytest.fixture
def ledger(path) -> Ledger:
    return Ledger(path)


@pytest.fixture(params=["fts5", "like"])
def search_ledger(request, path, monkeypatch) -> Ledger:
    """A ledger searched through FTS5, and one whose SQLite is taken to lack it."""
    if request.param == "like":
        monkeypatch.setattr(store, "fts_available", lambda: False)
    elif not store.fts_available():
        pytest.skip("this SQLite has no FTS5 trigram tokenizer")
    ledger = Ledger(path)
    assert ledger.fts is (request.param == "fts5")
    return ledger


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


# --- round trip -------------------------------------------------------------------------------


def test_every_field_and_image_round_trips(ledger):
    row = make(
        kind="edit",
        fields={"size": "1024x1024", "quality": "high", "params": {"seed": 7, "styles": ["a", "b"]}, "prompt_extend": False},
        n=2,
        request_id="req-123",
        task_id="task-9",
        revised_prompt="A red fox standing in fresh snow",
        usage={"input_tokens": 12, "output_tokens": 4160, "details": {"image_tokens": 4096}},
        cost_usd=0.167,
        cost_basis="billed",
        cost_note="usage x gpt-image-1 price list 2026-04",
        error=None,
        batch="job-7f3a",
        images=[
            ImageRow(1, "/out/fox-1.png", sha256="ab" * 32, bytes=123456, format="png", width=1024, height=1024),
            ImageRow(2, "/out/fox-2.webp", sha256="cd" * 32, bytes=654, format="webp", width=512, height=768),
        ],
    )
    gen_id = ledger.add(row)
    assert gen_id == row.id and isinstance(gen_id, int)
    assert ledger.get(gen_id) == row
    assert ledger.query() == [row]
    assert ledger.get(gen_id + 1) is None


def test_defaults_and_a_failure_round_trip(ledger):
    row = make(status="failed", exit_code=5, error="rejected by moderation", prompt="nothing saved")
    ledger.add(row)
    back = ledger.get(row.id)
    assert back == row
    assert back.images == [] and back.fields == {} and back.usage is None and back.cost_basis == "unknown"


def test_time_is_stored_in_utc_to_the_second(ledger):
    row = make(time="2026-05-02T01:30:15.123456+02:00")
    ledger.add(row)
    assert ledger.get(row.id).time == "2026-05-01T23:30:15+00:00"
    ledger.add(make(time="2026-05-01T23:30:15Z"))  # the Z spelling reads the same
    assert {r.time for r in ledger.query()} == {"2026-05-01T23:30:15+00:00"}


def test_ids_are_unique_and_never_reused(ledger, path):
    first = ledger.add(make())
    second = ledger.add(make())
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM generations WHERE id = ?", (second,))
    conn.close()
    assert ledger.add(make()) > second > first


def test_a_prompt_that_is_not_utf8_is_still_recorded(ledger):
    row = make(prompt="caf\udce9 at night")  # what argv gives for a Latin-1 byte
    ledger.add(row)
    assert ledger.get(row.id).prompt == "caf\\udce9 at night"
    assert [r.id for r in ledger.query(search="caf\udce9")] == [r.id for r in ledger.query(search="at night")] == [row.id]


@pytest.mark.parametrize(
    "overrides",
    [{"status": "done"}, {"kind": "upscale"}, {"cost_basis": "guessed"}, {"time": "yesterday"}, {"duration": "slow"}],
)
def test_a_row_that_cannot_be_recorded_is_a_ledger_error(ledger, path, overrides):
    with pytest.raises(LedgerError) as caught:
        ledger.add(make(**overrides))
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == ExitCode.CONFIG


def test_default_path(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setenv(store.DATA_DIR_ENV, str(tmp_path / "d"))
    assert store.default_path() == tmp_path / "d" / "ledger.sqlite3"
    assert Ledger().path == tmp_path / "d" / "ledger.sqlite3"
    monkeypatch.delenv(store.DATA_DIR_ENV)
    assert store.default_path() == platformdirs.user_data_path("imgen") / "ledger.sqlite3"


def test_reading_a_missing_ledger_creates_nothing(ledger, path):
    assert ledger.query() == []
    assert ledger.get(1) is None
    assert ledger.totals() == []
    assert ledger.fts is store.fts_available()
    assert not path.parent.exists()


# --- queries ----------------------------------------------------------------------------------


@pytest.fixture
def history(ledger) -> dict[str, GenerationRow]:
    rows = {
        "old": make(time="2026-04-20T08:00:00+00:00", model="flux-dev", profile="ci", prompt="old lighthouse"),
        "fail": make(time="2026-04-25T08:00:00+00:00", status="failed", exit_code=5, error="rejected", prompt="failed fox"),
        "part": make(time="2026-05-01T08:00:00+00:00", status="partial", exit_code=10, profile="ci", prompt="partial fox",
                     images=[ImageRow(1, "/out/p-1.png")]),
        "new": make(time="2026-05-03T08:00:00+00:00", model="flux-dev", prompt="new fox", images=[ImageRow(1, "/out/n-1.png")]),
        # the same second as "new", recorded later: ties go to the later id
        "tie": make(time="2026-05-03T08:00:00+00:00", prompt="tied fox"),
    }
    for row in rows.values():
        ledger.add(row)
    return rows


def names(rows, history):
    by_id = {row.id: name for name, row in history.items()}
    return [by_id[row.id] for row in rows]


def test_query_is_newest_first_with_images(ledger, history):
    rows = ledger.query()
    assert names(rows, history) == ["tie", "new", "part", "fail", "old"]
    assert rows[1].images == [ImageRow(1, "/out/n-1.png")]
    assert rows == [history[name] for name in ["tie", "new", "part", "fail", "old"]]


def test_query_filters(ledger, history):
    assert names(ledger.query(limit=2), history) == ["tie", "new"]
    assert names(ledger.query(limit=None), history) == ["tie", "new", "part", "fail", "old"]
    assert ledger.query(limit=0) == []
    assert names(ledger.query(model="flux-dev"), history) == ["new", "old"]
    assert names(ledger.query(profile="ci"), history) == ["part", "old"]
    assert names(ledger.query(failed=True), history) == ["part", "fail"]
    assert names(ledger.query(since=datetime(2026, 5, 1, 8, tzinfo=UTC)), history) == ["tie", "new", "part"]
    # an aware time in another zone is compared in UTC: 10:00+02:00 is 08:00 UTC
    assert names(ledger.query(since=datetime(2026, 5, 1, 10, tzinfo=timezone(timedelta(hours=2)))), history) == ["tie", "new", "part"]
    assert names(ledger.query(since=datetime(2026, 5, 1, 8)), history) == ["tie", "new", "part"]  # naive: UTC
    assert names(ledger.query(model="gpt-image-1", profile="default", failed=True, search="fox"), history) == ["fail"]
    assert ledger.query(model="nope") == []


# --- search -----------------------------------------------------------------------------------

PROMPTS = [
    "A castle at sunset, oil painting",
    "sunset over the sea",
    "portrait of a cat (watercolour) *dramatic*",
    'the word "NEAR" and AND OR NOT in caps',
    "50% off_sale banner",
    "500 off sale banner",
    "一只可爱的猫在花园里",
    "back\\slash and col:umn",
]


def expected(search: str) -> list[str]:
    """The answer every ledger must give, with or without FTS5: every word in the prompt, any case."""
    words = search.lower().split()
    return sorted(p for p in PROMPTS if all(w in p.lower() for w in words))


def search(ledger: Ledger, text: str) -> list[str]:
    return sorted(row.prompt for row in ledger.query(search=text, limit=None))


@pytest.fixture
def searchable(search_ledger) -> Ledger:
    for i, prompt in enumerate(PROMPTS):
        search_ledger.add(make(prompt=prompt, time=f"2026-05-01T10:00:{i:02d}+00:00"))
    return search_ledger


@pytest.mark.parametrize("text", ["castle sunset", "SUNSET castle", "sunset", "cat", "at", "paint", "ca"])
def test_search_finds_every_word_in_any_order_and_case(searchable, text):
    assert search(searchable, text) == expected(text)
    assert expected(text)


@pytest.mark.parametrize(
    "text",
    ['"', 'cat"', '"NEAR"', "*", "cat*", "*dramatic*", "(watercolour)", "(cat", "NEAR(cat sunset)", "NEAR", "cat AND sunset",
     "AND", "OR", "NOT", "sunset OR cat", "-cat", "^cat", "col:umn", "prompt:cat", "'", "\\", "back\\slash", "{cat}", "cat + sea",
     "可爱", "可爱的猫", "花园"],
)
def test_search_syntax_in_the_users_text_is_only_text(searchable, text):
    assert search(searchable, text) == expected(text)


@pytest.mark.parametrize("text", ["50%", "0%", "%", "off_sale", "f_s", "_", "50% off_sale"])
def test_search_percent_and_underscore_are_literal(searchable, text):
    assert search(searchable, text) == expected(text) == ["50% off_sale banner"]


def test_a_blank_search_is_no_filter(searchable):
    assert len(searchable.query(search="   ", limit=None)) == len(PROMPTS)


def test_without_fts5_the_step_still_succeeds_and_search_uses_like(monkeypatch, path):
    monkeypatch.setattr(store, "fts_available", lambda: False)
    ledger = Ledger(path)
    ledger.add(make(prompt="50% off_sale"))
    ledger.add(make(prompt="500 offxsale"))
    assert not ledger.fts
    assert version_of(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'generations_fts%'").fetchall() == []
    assert conn.execute("SELECT value FROM meta WHERE key = 'fts'").fetchone() == ("unavailable",)
    conn.close()
    assert search(ledger, "0% f_s") == ["50% off_sale"]


def test_fts_index_follows_deletes(ledger, path):
    if not ledger.fts:
        pytest.skip("this SQLite has no FTS5 trigram tokenizer")
    keep, drop = make(prompt="harbour at dawn"), make(prompt="harbour at dusk")
    ledger.add(keep)
    ledger.add(drop)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM generations WHERE id = ?", (drop.id,))
        assert conn.execute("SELECT count(*) FROM images WHERE generation_id = ?", (drop.id,)).fetchone() == (0,)
    conn.close()
    assert search(ledger, "harbour") == ["harbour at dawn"]


# --- totals -----------------------------------------------------------------------------------


@pytest.fixture
def costs(ledger) -> Ledger:
    images = [ImageRow(i, f"/out/{i}.png") for i in range(1, 5)]
    for row in [
        make(time="2026-05-01T09:00:00+00:00", model="gpt-image-1", profile="work", cost_usd=0.04, cost_basis="billed", images=images[:1]),
        make(time="2026-05-01T12:00:00+00:00", model="gpt-image-1", profile="work", cost_usd=0.04, cost_basis="billed", images=images[:2]),
        make(time="2026-05-02T09:00:00+00:00", model="gpt-image-1", profile="ci", host="127.0.0.1:8080", status="partial",
             exit_code=10, cost_usd=0.011, cost_basis="billed", images=images[:1]),
        make(time="2026-05-02T10:00:00+00:00", model="flux", profile="ci", host="127.0.0.1:8080", cost_usd=0.12,
             cost_basis="estimated", images=images),
        make(time="2026-05-03T09:00:00+02:00", model="flux", profile="work", status="failed", exit_code=8, error="503"),
        # 00:30 at +02:00 is still the 3rd in UTC; and "billed" with no figure counts as unknown
        make(time="2026-05-04T00:30:00+02:00", model="flux", profile="work", cost_basis="billed", images=images[:1]),
    ]:
        ledger.add(row)
    return ledger


def group(key, generations, images, billed, estimated, unknown, failed) -> dict:
    return dict(key=key, generations=generations, images=images, billed_usd=pytest.approx(billed), estimated_usd=pytest.approx(estimated),
                unknown=unknown, failed=failed)


CI = (2, 5, 0.011, 0.12, 0, 1)
WORK = (4, 4, 0.04 + 0.04, 0, 2, 1)

TOTALS = {
    "model": [group("flux", 3, 5, 0, 0.12, 2, 1), group("gpt-image-1", 3, 4, 0.04 + 0.04 + 0.011, 0, 0, 1)],
    "day": [group("2026-05-01", 2, 3, 0.08, 0, 0, 0), group("2026-05-02", 2, 5, 0.011, 0.12, 0, 1), group("2026-05-03", 2, 1, 0, 0, 2, 1)],
    "profile": [group("ci", *CI), group("work", *WORK)],
    "host": [group("127.0.0.1:8080", *CI), group("api.cometapi.com", *WORK)],
}


@pytest.mark.parametrize("by", sorted(TOTALS))
def test_totals_by_each_grouping(costs, by):
    got = costs.totals(by=by)
    assert got == TOTALS[by]
    # billed and estimated are never summed together, whatever the grouping
    assert sum(g["billed_usd"] for g in got) == pytest.approx(0.091)
    assert sum(g["estimated_usd"] for g in got) == pytest.approx(0.12)
    assert sum(g["generations"] for g in got) == 6 and sum(g["images"] for g in got) == 9


def test_totals_since_and_default_grouping(costs):
    assert costs.totals() == TOTALS["model"]
    assert costs.totals(since=datetime(2026, 5, 2, tzinfo=UTC), by="day") == TOTALS["day"][1:]
    assert costs.totals(since=datetime(2027, 1, 1, tzinfo=UTC)) == []


def test_totals_refuse_an_unknown_grouping(costs):
    with pytest.raises(ValueError, match="model, day, profile, host"):
        costs.totals(by="week")


# --- migrations -------------------------------------------------------------------------------


def test_an_empty_file_is_migrated_to_the_current_schema(path):
    path.parent.mkdir(parents=True)
    path.touch()
    ledger = Ledger(path)
    ledger.add(make(prompt="first light"))
    assert version_of(path) == SCHEMA_VERSION
    assert search(ledger, "light") == ["first light"]


def test_a_version_1_database_with_rows_migrates_keeping_every_row(path):
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)
    assert store.migrate(conn, target=1) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone() is None
    for i, prompt in enumerate(["misty forest at dawn", "forest fire", "city at night"]):
        gen_id = conn.execute(
            "INSERT INTO generations (time, duration, status, exit_code, profile, host, dialect, model, prompt, fields, cost_usd,"
            " cost_basis) VALUES (?, 1.0, 'ok', 0, 'default', 'h', 'openai', 'm', ?, '{\"size\":\"1024x1024\"}', 0.04, 'billed')",
            (f"2026-04-0{i + 1}T10:00:00+00:00", prompt),
        ).lastrowid
        conn.execute("INSERT INTO images (generation_id, number, path) VALUES (?, 1, ?)", (gen_id, f"/out/{i}.png"))
    conn.close()
    assert version_of(path) == 1

    ledger = Ledger(path)
    rows = ledger.query(limit=None)
    assert version_of(path) == SCHEMA_VERSION
    assert [r.prompt for r in rows] == ["city at night", "forest fire", "misty forest at dawn"]
    assert [r.images for r in rows] == [[ImageRow(1, f"/out/{i}.png")] for i in (2, 1, 0)]
    assert rows[0].fields == {"size": "1024x1024"}
    assert search(ledger, "forest") == ["forest fire", "misty forest at dawn"]
    assert search(ledger, "dawn forest") == ["misty forest at dawn"]
    ledger.add(make(prompt="forest again"))
    assert search(ledger, "forest") == ["forest again", "forest fire", "misty forest at dawn"]


def test_a_failing_step_leaves_the_database_at_the_previous_version(path, monkeypatch):
    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("step failed halfway")

    monkeypatch.setattr(store, "MIGRATIONS", [store.MIGRATIONS[0], broken])
    with pytest.raises(LedgerError, match="step failed halfway"):
        Ledger(path).add(make())
    assert version_of(path) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    assert conn.execute("SELECT count(*) FROM generations").fetchone() == (0,)
    conn.close()
    monkeypatch.undo()
    Ledger(path).add(make())
    assert version_of(path) == SCHEMA_VERSION


def test_a_newer_database_is_read_but_never_written(ledger, path):
    ledger.add(make(prompt="from before"))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer imgen.*upgrade") as caught:
        ledger.add(make(prompt="refused"))
    assert str(path) in str(caught.value)
    assert [r.prompt for r in ledger.query()] == ["from before"]
    assert ledger.totals()[0]["generations"] == 1
    assert version_of(path) == SCHEMA_VERSION + 1


# --- failure modes ----------------------------------------------------------------------------


def test_a_locked_database_fails_within_the_timeout(ledger, path):
    ledger.add(make(prompt="before the lock"))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(LedgerError, match="locked") as caught:
            Ledger(path, timeout=0.5).add(make())
        assert time.monotonic() - start < 2
        assert str(path) in str(caught.value)
        # WAL: readers are never held up by a writer
        assert [r.prompt for r in Ledger(path, timeout=0.5).query()] == ["before the lock"]
    finally:
        blocker.close()
    ledger.add(make(prompt="after the lock"))
    assert len(ledger.query()) == 2


def test_a_writer_waits_for_a_short_lock(ledger, path):
    ledger.add(make())
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, blocker.close)
    release.start()
    try:
        Ledger(path, timeout=5).add(make(prompt="waited"))
    finally:
        release.join()
    assert ledger.query()[0].prompt == "waited"


@pytest.fixture(scope="module")
def sound_database(tmp_path_factory) -> bytes:
    """A ledger of many pages, closed (so all of it is in the main file), as bytes."""
    path = tmp_path_factory.mktemp("sound") / "ledger.sqlite3"
    ledger = Ledger(path)
    for i in range(200):
        ledger.add(make(prompt=f"row {i} " + "x" * 500, images=[ImageRow(1, f"/out/{i}.png")]))
    return path.read_bytes()


@pytest.mark.parametrize("how", ["random", "truncated", "header only", "torn header"])
@pytest.mark.parametrize("call", ["add", "query", "get", "totals", "fts"])
def test_a_corrupt_database_is_a_ledger_error(path, sound_database, how, call):
    cut = {"random": 0, "truncated": len(sound_database) // 2, "header only": 4096, "torn header": 60}[how]
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(16384) if how == "random" else sound_database[:cut])
    ledger = Ledger(path)
    actions = {"add": lambda: ledger.add(make()), "query": lambda: ledger.query(limit=None), "get": lambda: ledger.get(1),
               "totals": ledger.totals, "fts": lambda: ledger.fts}
    with pytest.raises(LedgerError, match="move it aside") as caught:
        actions[call]()
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("which", ["", "-wal", "-shm"])
def test_a_symlink_is_refused(tmp_path, which):
    real = tmp_path / "real.sqlite3"
    Ledger(real).add(make())
    path = tmp_path / "link" / "ledger.sqlite3"
    path.parent.mkdir()
    if which:
        Ledger(path).add(make())
    link = path.with_name(path.name + which)
    link.unlink(missing_ok=True)
    link.symlink_to(real.with_name(real.name + which))  # dangling or not, never followed
    before = real.read_bytes()
    for call in (lambda: Ledger(path).add(make()), lambda: Ledger(path).query()):
        with pytest.raises(LedgerError, match="symbolic link") as caught:
            call()
        assert str(path) in str(caught.value)
    assert real.read_bytes() == before


def test_a_directory_at_the_path_is_refused(path):
    path.mkdir(parents=True)
    with pytest.raises(LedgerError, match="not a regular file"):
        Ledger(path).add(make())


def test_an_unusable_directory_is_a_ledger_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    path = tmp_path / "file" / "imgen" / "ledger.sqlite3"
    with pytest.raises(LedgerError) as caught:
        Ledger(path).add(make())
    assert str(path) in str(caught.value)
    assert Ledger(path).query() == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_the_directory_and_files_are_private(path):
    ledger = Ledger(path)
    keeper = None
    old = os.umask(0)  # the modes must not depend on the caller's umask
    try:
        ledger.add(make())
        keeper = sqlite3.connect(path)  # while a connection is open, -wal and -shm stay on disk
        keeper.execute("SELECT count(*) FROM generations").fetchone()
        ledger.add(make())
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for name in (path.name, path.name + "-wal", path.name + "-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    finally:
        os.umask(old)
        if keeper is not None:
            keeper.close()
    path.chmod(0o644)
    ledger.add(make())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- privacy ----------------------------------------------------------------------------------


def test_credentials_are_dropped_and_data_uris_shortened(ledger, path):
    image = "data:image/png;base64," + "iVBORw0KGgo" * 100
    small = "data:image/png;base64,iVBORw0KGgo="
    row = make(fields={
        "size": "1024x1024",
        "api_key": API_KEY, "Key": API_KEY, "apiKey": API_KEY, "X-Api-Key": API_KEY,
        "headers": {"Authorization": f"Bearer {API_KEY}", "Accept": "image/png"},
        "params": [{"token": API_KEY, "seed": 1}, {"access_token": API_KEY}, {"client": {"SECRET": API_KEY, "password": API_KEY}}],
        "image": image,
        "images": [image, small],
        "mask": {"url": image},
    })
    ledger.add(row)
    assert ledger.get(row.id).fields == {
        "size": "1024x1024",
        "headers": {"Accept": "image/png"},
        "params": [{"seed": 1}, {}, {"client": {}}],
        "image": f"<data URI, {len(image)} chars>",
        "images": [f"<data URI, {len(image)} chars>", small],
        "mask": {"url": f"<data URI, {len(image)} chars>"},
    }
    assert row.fields["api_key"] == API_KEY  # the caller's row is left as it was
    for name in os.listdir(path.parent):
        data = (path.parent / name).read_bytes()
        assert API_KEY.encode() not in data and b"iVBORw0KGgoiVBORw0KGgo" not in data


# --- load -------------------------------------------------------------------------------------


def check_rows(ledger: Ledger, tags: list[str], count: int) -> None:
    rows = ledger.query(limit=None)
    assert len(rows) == len(tags) * count
    assert len({r.id for r in rows}) == len(rows)
    assert sorted(r.prompt for r in rows) == sorted(f"{tag} {i}" for tag in tags for i in range(count))
    for r in rows:
        assert [(i.index, i.path) for i in r.images] == [(1, f"/out/{r.prompt}-1.png"), (2, f"/out/{r.prompt}-2.png")], r


def test_sixteen_threads_adding_at_once_lose_nothing(ledger):
    start = threading.Barrier(16)
    errors = []

    def work(tag: str) -> None:
        start.wait()
        try:
            for i in range(30):
                prompt = f"{tag} {i}"
                ledger.add(make(prompt=prompt, images=[ImageRow(1, f"/out/{prompt}-1.png"), ImageRow(2, f"/out/{prompt}-2.png")]))
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's name
            errors.append((tag, exc))

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_rows(ledger, [f"t{n}" for n in range(16)], 30)


CHILD = """
import sys
from pathlib import Path
from imgen.ledger.store import GenerationRow, ImageRow, Ledger

ledger = Ledger(Path(sys.argv[1]))
tag = sys.argv[2]
sys.stdin.readline()  # go: both processes are up and imported
for i in range(int(sys.argv[3])):
    prompt = f"{tag} {i}"
    ledger.add(GenerationRow(time="2026-05-01T10:00:00+00:00", duration=1.0, status="ok", exit_code=0, profile="ci", host="h",
                             dialect="openai", model="m", prompt=prompt,
                             images=[ImageRow(1, f"/out/{prompt}-1.png"), ImageRow(2, f"/out/{prompt}-2.png")]))
"""


def test_two_processes_adding_at_once_lose_nothing(ledger, path):
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), tag, "100"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
             for tag in ("p1", "p2")]
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    check_rows(ledger, ["p1", "p2"], 100)


def test_rows_do_not_share_their_lists():
    assert make().images is not make().images and make().fields is not make().fields
