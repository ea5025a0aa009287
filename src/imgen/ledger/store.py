"""The ledger: `ledger.sqlite3` in the per-user data directory, one row per generation (its prompt,
settings, cost and the files it saved), for `history` searches and cost totals.

What it guarantees:

- `add` is one transaction: a generation and its images are recorded together or not at all, and
  the id it returns is the row's for good (ids are never reused).
- Any number of threads and processes may use one file at once: every call opens its own
  connection and closes it before returning; the database runs in WAL mode, so readers never wait
  for a writer, and a writer waits for another at most `timeout` seconds.
- Every failure is a LedgerError naming the database's path (a locked, corrupt, unwritable or
  symlinked file, a newer schema), never a raw sqlite3 exception and never a hang, so a caller can
  turn it into a warning and let the generation it describes succeed.
- The schema is versioned (`PRAGMA user_version`) and migrated forward one step per transaction;
  a database written by a newer imgen can still be read, but is never written.
- Search gives the same answers with or without FTS5: every word of the user's text must occur in
  the prompt, in any order, ignoring case; FTS5 (trigram), where this SQLite has it, only makes it
  fast. The text is always quoted or escaped, never read as query syntax.
- The ledger is private and holds no key: the directory is made 0700, the database and its
  -wal/-shm 0600, a symbolic link at any of their paths is refused; `add` drops every entry named
  like a credential from `fields` at any depth, and shortens data URIs, so image bytes never go in.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import jsontext
from ..errors import ExitCode, ImgenError
from ..redact import for_record, scrub, scrubbed

LEDGER_NAME = "ledger.sqlite3"
DATA_DIR_ENV = "IMGEN_DATA_DIR"
SCHEMA_VERSION = 2

STATUSES = ("ok", "partial", "failed")
KINDS = ("generate", "edit", "task")
COST_BASES = ("billed", "estimated", "unknown")
GROUPINGS = {"model": "g.model", "day": "substr(g.time, 1, 10)", "profile": "g.profile", "host": "g.host"}

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_TRIGRAM = 3  # FTS5's trigram index cannot match a shorter word: those words are matched by LIKE


class LedgerError(ImgenError):
    """The ledger cannot be read or written; the message names its path. The generation it concerns
    is not affected: callers report this as a warning."""

    exit_code = ExitCode.CONFIG


def default_path() -> Path:
    """IMGEN_DATA_DIR / LEDGER_NAME when set, else platformdirs.user_data_path("imgen") / LEDGER_NAME."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser() / LEDGER_NAME
    import platformdirs

    return platformdirs.user_data_path("imgen") / LEDGER_NAME


@dataclass
class ImageRow:
    index: int  # the image's number in its generation, from 1
    path: str  # absolute path as saved
    sha256: str | None = None
    bytes: int | None = None
    format: str | None = None  # png | jpeg | webp | gif
    width: int | None = None
    height: int | None = None


@dataclass
class GenerationRow:
    time: str  # ISO 8601 UTC with seconds, when it started
    duration: float  # seconds
    status: str  # "ok" | "partial" | "failed"
    exit_code: int
    profile: str
    host: str  # the API host (no scheme, no path), e.g. api.cometapi.com or 127.0.0.1:8080
    dialect: str
    model: str
    prompt: str
    kind: str = "generate"  # "generate" | "edit" | "task" (task wait/action)
    fields: dict = field(default_factory=dict)  # the body fields and params sent, never the key, never image bytes
    n: int = 1
    request_id: str | None = None
    task_id: str | None = None
    revised_prompt: str | None = None
    usage: dict | None = None
    cost_usd: float | None = None
    cost_basis: str = "unknown"  # "billed" | "estimated" | "unknown"
    cost_note: str = ""  # how the figure was reached, or why there is none
    error: str | None = None  # the error message when it failed
    batch: str | None = None  # a batch job's key
    images: list[ImageRow] = field(default_factory=list)
    id: int | None = None  # set by the ledger


# --- schema ------------------------------------------------------------------------------------

_GENERATION_COLUMNS = (
    "time", "duration", "status", "exit_code", "kind", "profile", "host", "dialect", "model", "prompt", "fields", "n",
    "request_id", "task_id", "revised_prompt", "usage", "cost_usd", "cost_basis", "cost_note", "error", "batch",
)
_IMAGE_COLUMNS = ("number", "path", "sha256", "bytes", "format", "width", "height")

_STEP_1 = (
    # AUTOINCREMENT: an id a user once saw must never name another generation after a deletion.
    """CREATE TABLE generations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        duration REAL NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        kind TEXT NOT NULL DEFAULT 'generate',
        profile TEXT NOT NULL,
        host TEXT NOT NULL,
        dialect TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        fields TEXT NOT NULL DEFAULT '{}',
        n INTEGER NOT NULL DEFAULT 1,
        request_id TEXT,
        task_id TEXT,
        revised_prompt TEXT,
        usage TEXT,
        cost_usd REAL,
        cost_basis TEXT NOT NULL DEFAULT 'unknown',
        cost_note TEXT NOT NULL DEFAULT '',
        error TEXT,
        batch TEXT
    )""",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT,
        bytes INTEGER,
        format TEXT,
        width INTEGER,
        height INTEGER
    )""",
    "CREATE INDEX images_generation ON images(generation_id)",
    "CREATE INDEX generations_time ON generations(time)",
    "CREATE INDEX generations_model ON generations(model)",
)

# External content: the prompt is stored once, in generations; the index follows it by trigger.
_FTS = (
    "CREATE VIRTUAL TABLE generations_fts USING fts5(prompt, content='generations', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER generations_fts_insert AFTER INSERT ON generations BEGIN
        INSERT INTO generations_fts(rowid, prompt) VALUES (new.id, new.prompt);
    END""",
    """CREATE TRIGGER generations_fts_delete AFTER DELETE ON generations BEGIN
        INSERT INTO generations_fts(generations_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
    END""",
    """CREATE TRIGGER generations_fts_update AFTER UPDATE OF prompt ON generations BEGIN
        INSERT INTO generations_fts(generations_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
        INSERT INTO generations_fts(rowid, prompt) VALUES (new.id, new.prompt);
    END""",
    "INSERT INTO generations_fts(generations_fts) VALUES ('rebuild')",  # the rows written before this step
)


@functools.cache
def fts_available() -> bool:
    """Whether this Python's SQLite has FTS5 with the trigram tokenizer (SQLite 3.34 and later)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _step_1(conn: sqlite3.Connection) -> None:
    for statement in _STEP_1:
        conn.execute(statement)


def _step_2(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # Without FTS5 the step still succeeds: search falls back to LIKE, with the same answers.
    available = fts_available()
    if available:
        for statement in _FTS:
            conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('fts', ?)", ("fts5" if available else "unavailable",))


# MIGRATIONS[v] takes a database from user_version v to v + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_step_1, _step_2]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Run the steps from the database's version up to `target`, each in its own transaction, and
    return the version it is at (higher than `target` for a database a newer imgen wrote)."""
    version = _user_version(conn)
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        version = _user_version(conn)  # another process may have taken this step while we waited
        if version < target:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(f"PRAGMA user_version = {version:d}")
        conn.execute("COMMIT")
    return version


def _user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _has_fts(conn: sqlite3.Connection) -> bool:
    # The index must exist here and this SQLite must be able to read it (the file may come from another machine).
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'generations_fts'").fetchone()
    return found is not None and fts_available()


# --- the ledger --------------------------------------------------------------------------------


class Ledger:
    """The ledger at `path` (default_path() when None). Safe to share between threads, and to use
    from several processes at once: nothing is kept open between calls."""

    def __init__(self, path: Path | None = None, *, timeout: float = 10.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout

    # --- writing

    def add(self, row: GenerationRow) -> int:
        """Record the generation and its images in one transaction (BEGIN IMMEDIATE); return its id,
        also set on `row`."""
        try:
            values = self._values(row)
            images = [_image_values(image) for image in row.images]
        except (TypeError, ValueError, OverflowError) as exc:
            raise LedgerError(f"cannot record a generation in the ledger {self.path}: {exc}") from exc
        with self._open(create=True) as opened:
            assert opened is not None
            conn, version = opened
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"the ledger {self.path} was written by a newer imgen (schema {version}, this one knows {SCHEMA_VERSION}); "
                    "nothing was recorded: upgrade imgen",
                    "history and totals still read it",
                )
            conn.execute("BEGIN IMMEDIATE")
            columns = ", ".join(_GENERATION_COLUMNS)
            marks = ", ".join("?" * len(_GENERATION_COLUMNS))
            gen_id = conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", values).lastrowid
            image_columns = ", ".join(("generation_id", *_IMAGE_COLUMNS))
            image_marks = ", ".join("?" * (len(_IMAGE_COLUMNS) + 1))
            conn.executemany(f"INSERT INTO images ({image_columns}) VALUES ({image_marks})", [(gen_id, *image) for image in images])
            conn.execute("COMMIT")
        row.id = gen_id
        return gen_id

    def _values(self, row: GenerationRow) -> tuple:
        for name, allowed in (("status", STATUSES), ("kind", KINDS), ("cost_basis", COST_BASES)):
            value = getattr(row, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r} (one of {', '.join(allowed)})")
        return (
            _iso(row.time),
            float(row.duration),
            row.status,
            int(row.exit_code),
            row.kind,
            _text(row.profile),
            _text(row.host),
            _text(row.dialect),
            _text(row.model),
            _text(row.prompt),
            _json(for_record(row.fields or {})),
            int(row.n),
            _text(row.request_id),
            _text(row.task_id),
            _text(row.revised_prompt),
            None if row.usage is None else _json(row.usage),
            None if row.cost_usd is None else float(row.cost_usd),
            row.cost_basis,
            _text(row.cost_note or ""),
            _text(row.error),
            _text(row.batch),
        )

    # --- reading

    def query(
        self,
        *,
        limit: int | None = 20,
        model: str | None = None,
        profile: str | None = None,
        since: datetime | None = None,
        search: str | None = None,
        failed: bool = False,
    ) -> list[GenerationRow]:
        """Generations, newest first, with their images. `search`: every word must occur in the prompt
        (any order, any case); `failed`: only those whose status is failed or partial; `since`: a naive
        datetime is read as UTC."""
        with self._open(create=False) as opened:
            if opened is None:
                return []
            conn, _ = opened
            where, params = [], []
            for column, value in (("model", model), ("profile", profile)):
                if value is not None:
                    where.append(f"g.{column} = ?")
                    params.append(_text(value))
            if since is not None:
                where.append("g.time >= ?")
                params.append(_iso(since))
            if failed:
                where.append("g.status != 'ok'")
            if search and search.split():
                clause, words = _search(search, fts=_has_fts(conn))
                where.append(clause)
                params += words
            sql = f"SELECT id, {', '.join(_GENERATION_COLUMNS)} FROM generations g"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY g.time DESC, g.id DESC LIMIT ?"
            params.append(-1 if limit is None else max(limit, 0))
            conn.execute("BEGIN")  # one snapshot for the rows and their images
            rows = [_generation(record) for record in conn.execute(sql, params)]
            _attach_images(conn, rows)
            conn.execute("COMMIT")
            return rows

    def get(self, gen_id: int) -> GenerationRow | None:
        with self._open(create=False) as opened:
            if opened is None:
                return None
            conn, _ = opened
            conn.execute("BEGIN")
            record = conn.execute(f"SELECT id, {', '.join(_GENERATION_COLUMNS)} FROM generations WHERE id = ?", (gen_id,)).fetchone()
            rows = [] if record is None else [_generation(record)]
            _attach_images(conn, rows)
            conn.execute("COMMIT")
            return rows[0] if rows else None

    def totals(self, *, since: datetime | None = None, by: str = "model") -> list[dict]:
        """Counts and costs grouped by model, day (UTC), profile or host, sorted by key. Billed and
        estimated costs are summed apart, never together; "unknown" counts the generations without a
        figure, "failed" those whose status is failed or partial (as query(failed=True))."""
        if by not in GROUPINGS:
            raise ValueError(f"cannot group totals by {by!r}: one of {', '.join(GROUPINGS)}")
        with self._open(create=False) as opened:
            if opened is None:
                return []
            conn, _ = opened
            sql = f"""
                SELECT {GROUPINGS[by]} AS key,
                       COUNT(*),
                       TOTAL(im.count),
                       TOTAL(CASE WHEN g.cost_basis = 'billed' THEN g.cost_usd END),
                       TOTAL(CASE WHEN g.cost_basis = 'estimated' THEN g.cost_usd END),
                       TOTAL(g.cost_usd IS NULL OR g.cost_basis NOT IN ('billed', 'estimated')),
                       TOTAL(g.status != 'ok')
                FROM generations g
                LEFT JOIN (SELECT generation_id, COUNT(*) AS count FROM images GROUP BY generation_id) im ON im.generation_id = g.id
                {"WHERE g.time >= ?" if since is not None else ""}
                GROUP BY key ORDER BY key"""
            params = [_iso(since)] if since is not None else []
            return [
                {
                    "key": key,
                    "generations": count,
                    "images": int(images),
                    # Float sums pick up noise in the 17th digit; no price is quoted below a nano-dollar.
                    "billed_usd": round(billed, 9),
                    "estimated_usd": round(estimated, 9),
                    "unknown": int(unknown),
                    "failed": int(failed),
                }
                for key, count, images, billed, estimated, unknown, failed in conn.execute(sql, params)
            ]

    @property
    def fts(self) -> bool:
        """Whether search uses the full-text index (else LIKE, with the same answers, slower)."""
        with self._open(create=False) as opened:
            if opened is None:
                return fts_available()  # what a new ledger would use
            return _has_fts(opened[0])

    # --- the file

    @contextlib.contextmanager
    def _open(self, *, create: bool) -> Iterator[tuple[sqlite3.Connection, int] | None]:
        """A new connection to the migrated database, and its schema version; None when the file
        does not exist and `create` is false (reading never creates a ledger). Every sqlite3 and OS
        error inside, the caller's included, comes out as a LedgerError."""
        try:
            if not self._prepare(create):
                yield None
                return
            # mode=rw: SQLite opens the file _prepare checked and never creates one of its own.
            conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=rw", uri=True, timeout=self.timeout, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {max(0, int(self.timeout * 1000)):d}")
                self._use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                version = migrate(conn)
                self._tighten()
                yield conn, version
            finally:
                conn.close()  # which rolls back a transaction an error left open
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        except OSError as exc:
            raise LedgerError(
                f"cannot use the ledger {self.path}: {exc.strerror or exc}",
                f"make {self.path.parent} writable, or set {DATA_DIR_ENV} to a directory of its own",
            ) from exc

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Setting journal_mode does not wait on the busy handler: two processes opening a new ledger
        # at once, or one opening it as another's last connection closes, get SQLITE_BUSY at once.
        # So: read first (a read waits), switch only a database not yet in WAL, and retry that switch.
        conn.execute("PRAGMA user_version").fetchone()
        deadline = time.monotonic() + self.timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                    return  # a file system without shared memory: the default journal still works, just with less concurrency
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _prepare(self, create: bool) -> bool:
        """Refuse links and odd files at the database's paths; make the directory (0700) and the file
        (0600) when `create`. Whether the database exists now."""
        exists = False
        for path in self._files():
            try:
                info = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISLNK(info.st_mode):
                raise self._refused(path, "is a symbolic link")
            if not stat.S_ISREG(info.st_mode):
                raise self._refused(path, "is not a regular file")
            exists = exists or path == self.path
        if exists or not create:
            return exists
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode passes through the umask; this states the intent
        with contextlib.suppress(FileExistsError):  # another process made it first: an empty file is a new database to SQLite
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
        return True

    def _tighten(self) -> None:
        # SQLite gives -wal and -shm the database's mode; a file made by someone else's tool may be looser.
        for path in self._files():
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
                    os.chmod(path, 0o600)

    def _files(self) -> tuple[Path, ...]:
        return self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")

    def _refused(self, path: Path, what: str) -> LedgerError:
        return LedgerError(f"the ledger {self.path}: {path} {what}; imgen does not use it",
                           f"remove it, or set {DATA_DIR_ENV} to a directory of its own")

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code; extended codes add bits above it
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return LedgerError(
                f"the ledger {self.path} is locked by another process (waited {self.timeout:g} s); nothing was recorded",
                "another imgen is writing to it for unusually long: try again, or find the process holding it",
            )
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return LedgerError(
                f"the ledger {self.path} is not a database, or is damaged ({exc}): move it aside, and imgen starts a new one",
                f"e.g. mv {self.path} {self.path}.broken",
            )
        if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL):
            return LedgerError(
                f"cannot use the ledger {self.path}: {exc}",
                f"make {self.path.parent} writable, with free space, or set {DATA_DIR_ENV} to a directory of its own",
            )
        return LedgerError(f"the ledger {self.path} failed: {exc}")


# --- helpers -----------------------------------------------------------------------------------


def _search(text: str, *, fts: bool) -> tuple[str, list[str]]:
    """A WHERE clause requiring every word of `text` in the prompt, and its parameters."""
    clauses, params, indexed = [], [], []
    for word in _text(text).split():
        if fts and len(word) >= _TRIGRAM:
            indexed.append('"' + word.replace('"', '""') + '"')  # a quoted phrase: its characters are only characters
        else:
            clauses.append("g.prompt LIKE ? ESCAPE '\\'")
            params.append("%" + re.sub(r"([\\%_])", r"\\\1", word) + "%")
    if indexed:
        clauses.insert(0, "g.id IN (SELECT rowid FROM generations_fts WHERE generations_fts MATCH ?)")
        params.insert(0, " AND ".join(indexed))
    return "(" + " AND ".join(clauses) + ")", params


def _attach_images(conn: sqlite3.Connection, rows: list[GenerationRow]) -> None:
    by_id = {row.id: row for row in rows}
    ids = list(by_id)
    for start in range(0, len(ids), 500):  # well below SQLite's limit on bound parameters
        chunk = ids[start : start + 500]
        sql = (f"SELECT generation_id, {', '.join(_IMAGE_COLUMNS)} FROM images WHERE generation_id IN ({', '.join('?' * len(chunk))})"
               " ORDER BY generation_id, number, id")
        for gen_id, *values in conn.execute(sql, chunk):
            by_id[gen_id].images.append(ImageRow(*values))


def _generation(record: tuple) -> GenerationRow:
    gen_id, *values = record
    data = dict(zip(_GENERATION_COLUMNS, values, strict=True))
    data["fields"] = _load(data["fields"]) or {}
    data["usage"] = _load(data["usage"])
    return GenerationRow(**data, id=gen_id)


def _image_values(image: ImageRow) -> tuple:
    return (
        int(image.index),
        _text(image.path),
        _text(image.sha256),
        None if image.bytes is None else int(image.bytes),
        _text(image.format),
        None if image.width is None else int(image.width),
        None if image.height is None else int(image.height),
    )


def _iso(value: str | datetime) -> str:
    """ISO 8601 in UTC, to the second, one spelling for all, so that text order is time order."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _text(value: str | None) -> str | None:
    # SQLite takes UTF-8 only: a lone surrogate (an argv byte that is not UTF-8) is kept as an escape.
    if value is None:
        return None
    value = scrub(str(value))  # a server's text (an error, a request id) may echo the key
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _json(value: Any) -> str:
    return _text(json.dumps(scrubbed(value), ensure_ascii=False, separators=(",", ":"), default=str))


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return jsontext.loads(text)
    except ValueError:  # written by hand or by another tool: shown as it is rather than lost
        return {"unparsed": text}
