"""Batch generation: every prompt of a file, N at a time, resumable, within a budget.

    load()    read the file, check every job with pipeline.prepare (nothing is sent while a line is
              bad, or names an output outside -o DIR)
    lock      one runner per directory (per shard): a second one is refused, or waits
    select()  this shard's jobs; those the manifest already holds are skipped; the budget cuts the rest
    Runner    N jobs in flight over shared clients and one shared 429 pause; each finished job is
              appended to the manifest at once, and only then are its paths printed

Resume without duplicates: a job's file names are fixed by the job itself (its `name`, or the
prompt's slug plus the first 8 hex digits of its key) and a job always replaces its own names.
So a job whose images were saved but whose manifest line was never written (a crash, SIGKILL,
Ctrl-C between the two) is simply made again under the same names on the next run: the old
files are replaced, never joined by `-2` copies. Two jobs that would write the same names are
refused before anything is sent.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import pipeline
from ..dialects import TaskRef
from ..errors import ExitCode, ImgenError, UsageError
from ..files.writer import check_writable
from ..generation.hooks import Connections, Hooks
from ..generation.outcome import Outcome
from ..generation.plan import require_key
from ..generation.saving import discard, save_all
from ..ledger import record as ledger
from ..report import Messages, progress_allowed
from ..transport import http
from . import jobs, lock, manifest
from .jobs import Job, file_names

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
INTERRUPT_GRACE = 30.0  # seconds Ctrl-C waits for jobs already writing files


@dataclass
class BatchOptions:
    source: str  # a file, or "-" for stdin
    flags: dict[str, Any]  # command-line settings, the defaults of every job
    fields: dict[str, Any]
    params: dict[str, Any]
    output: str | None = None
    strict: bool = False
    concurrency: int = 4
    force: bool = False
    sidecar: bool = False
    max_total_images: int | None = None
    max_cost: float | None = None
    shard: tuple[int, int] | None = None
    json_out: bool = False
    dry_run: bool = False
    quiet: bool = False
    wait_lock: bool = False  # wait for another runner on the same directory instead of refusing


@dataclass
class JobResult:
    job: Job
    status: str  # ok | failed | skipped | left
    files: list[Path] = field(default_factory=list)
    error: ImgenError | None = None

    def document(self) -> dict[str, Any]:
        return {
            "key": self.job.key,
            "line": self.job.line,
            "status": self.status,
            "files": [str(p) for p in self.files],
            "error": self.error.to_dict() if self.error else None,
        }


# --------------------------------------------------------------------------- loading


def read_source(source: str) -> tuple[str, Path]:
    """The batch text, and the directory its relative reference-image paths start from."""
    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("--batch -: stdin is a terminal", "pipe the jobs in: imgen generate --batch - < prompts.txt")
        data = sys.stdin.buffer.read()  # all of it, before any job is sent: a bad line 2 must not follow a billed line 1
        try:
            return data.decode("utf-8"), Path.cwd()
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise UsageError(f"--batch -: line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x}); nothing was sent",
                             "convert the jobs to UTF-8 first, e.g. with iconv -t UTF-8") from None
    path = Path(source).expanduser()
    try:
        return path.read_text(encoding="utf-8"), path.parent
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"--batch {source}: cannot read it ({reason})", "give a readable UTF-8 file, or - for stdin") from None


def output_root(options: BatchOptions) -> Path:
    """Where the manifest lives; jobs' relative `output` directories hang below it."""
    from ..config.settings import resolve

    raw = options.output if options.output is not None else str(resolve(options.flags)["output_dir"])
    if raw == "-":
        raise UsageError("-o - with --batch: stdout carries one image, a batch makes many", "use -o DIR")
    root = Path(raw).expanduser()
    if root.suffix.lower() in IMAGE_SUFFIXES and not root.is_dir():
        raise UsageError(f"-o {raw} with --batch: a batch writes many files into a directory", "use -o DIR")
    if root.exists() and not root.is_dir():
        raise UsageError(f"-o {raw}: exists and is not a directory", "give a directory for the batch's images")
    return root


def load(options: BatchOptions, root: Path, messages: Messages) -> list[Job]:
    """Every job of the batch, checked; UsageError naming every bad line when any is bad."""
    text, base_dir = read_source(options.source)
    specs, problems = jobs.parse(text)
    if not specs and not problems:
        raise UsageError(f"--batch {options.source}: no prompts in it", "one prompt per line, or JSON Lines with a \"prompt\" each")
    defaults = jobs.Defaults(options.flags, options.fields, options.params, options.strict)
    planned, more, warnings = jobs.plan_all(specs, defaults, root, base_dir)
    problems = sorted(problems + more, key=jobs.line_of)
    if problems:
        label = "problem" if len(problems) == 1 else "problems"
        raise UsageError(
            f"{len(problems)} {label} in --batch {options.source}:\n  " + "\n  ".join(problems),
            "nothing was sent; fix these lines and run again",
        )
    for warning in warnings:
        messages.warn(warning)
    return planned


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    run: list[Job]
    skipped: list[JobResult]
    left: list[Job]
    budget_note: str | None = None


def select(all_jobs: list[Job], options: BatchOptions, root: Path, messages: Messages) -> Selection:
    mine = [j for j in all_jobs if jobs.in_shard(j.key, options.shard)]
    records, warnings = manifest.read(root / manifest.MANIFEST_NAME, root)
    for warning in warnings:
        messages.warn(warning)
    in_flight = manifest.tasks_in_flight(root / manifest.MANIFEST_NAME)
    to_run: list[Job] = []
    skipped: list[JobResult] = []
    for job in mine:
        record = None if options.force else records.get(job.key)
        files = manifest.verified_files(record, root) if record else None
        if files is None:
            task = in_flight.get(job.key)
            if task is not None:  # paid for by an earlier run: wait for it, even with --force
                job.resume = TaskRef(task["id"], str(task.get("dialect") or job.plan.dialect), dict(task.get("extra") or {}))
            to_run.append(job)
            continue
        if options.sidecar and not options.dry_run:
            manifest.write_sidecars(record, root)  # restores any a user deleted, without a request
        skipped.append(JobResult(job, "skipped", files))
    if options.max_cost is not None:
        price_jobs(to_run, options)
    run, left, note = apply_budget(to_run, options.max_total_images, options.max_cost)
    return Selection(run, skipped, left, note)


def price_jobs(to_run: list[Job], options: BatchOptions) -> None:
    """Each job's cost before it is sent, or UsageError: a budget kept by guessing is not kept."""
    from ..models import catalog, cost

    paid = [j for j in to_run if not j.plan.offline]
    for job in to_run:
        if job.plan.offline:
            job.cost = 0.0
    if not paid:
        return
    base_url = paid[0].plan.base_url
    try:
        # --dry-run sends nothing, the price list included: it reads what `imgen models --remote` cached.
        prices = catalog.read_cache(base_url) if options.dry_run else catalog.load(base_url)
    except ImgenError as exc:  # keeps its own exit code: a network failure is not a usage error
        raise type(exc)(
            f"--max-cost needs the price list from {base_url}/api/models: {exc.message}",
            "retry when the catalog answers, or drop --max-cost",
        ) from None
    if prices is None:
        raise UsageError("--max-cost with --dry-run: no cached price list", "run imgen models --remote first (it caches the prices)")
    unknown: list[str] = []
    for job in paid:
        request = job.plan.request
        found = cost.estimate(request.model, job.images, prices, fields=request.fields, prompt=request.prompt)
        if found.usd is None:
            unknown.append(f"line {job.line}: {found.note}")
        job.cost = found.usd
    if unknown:
        shown = unknown[:10] + ([f"... and {len(unknown) - 10} more"] if len(unknown) > 10 else [])
        raise UsageError(
            "--max-cost: the cost of these jobs is not known before they run, so the budget cannot be kept:\n  " + "\n  ".join(shown),
            "use models with a per-request price (imgen models --remote lists prices), or drop --max-cost",
        )


def apply_budget(to_run: list[Job], max_images: int | None, max_cost: float | None) -> tuple[list[Job], list[Job], str | None]:
    """The jobs that fit, in order; the batch stops at the first job that would go over."""
    images, spent = 0, 0.0
    for i, job in enumerate(to_run):
        over = None
        if max_images is not None and images + job.images > max_images:
            over = f"--max-total-images {max_images}"
        elif max_cost is not None and spent + (job.cost or 0.0) > max_cost + 1e-9:
            over = f"--max-cost {max_cost:g}"
        if over:
            done = f"{i} job{'s' if i != 1 else ''} ({images} image{'s' if images != 1 else ''}"
            done += f", ${spent:.4f})" if max_cost is not None else ")"
            note = f"{over} reached: {done} fit; {len(to_run) - i} left undone, from line {job.line} on"
            return to_run[:i], to_run[i:], note
        images += job.images
        spent += job.cost or 0.0
    return to_run, [], None


# --------------------------------------------------------------------------- the image budget


class ImageBudget:
    """--max-total-images as a hard cap: a job reserves the images it may make before it is sent,
    so the jobs in flight together never ask for more than the budget, and it saves no more than
    it reserved, whatever the answer holds. select() already left out the jobs that do not fit;
    this keeps the cap true of what is sent and saved, not only of what was planned."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.left = total
        self._lock = threading.Lock()

    def reserve(self, count: int) -> bool:
        if self.left is None:
            return True
        with self._lock:
            if count > self.left:
                return False
            self.left -= count
            return True


def keep_reserved(response: Any, reserved: int) -> int:
    """Drop the images past the `reserved` first ones (a spooled one's temporary file with it);
    how many went. Failed items stay: they save nothing, and say what went wrong."""
    kept, images, dropped = [], 0, 0
    for item in response.items:
        if not item.failed:
            if images >= reserved:
                if item.spooled is not None:
                    item.spooled.abort()
                    item.spooled = None
                dropped += 1
                continue
            images += 1
        kept.append(item)
    response.items = kept
    return dropped


# --------------------------------------------------------------------------- concurrency


class AdaptiveLimit:
    """How many jobs may be in flight: the ceiling at first, halved on a 429, then one more after
    each run of successes as long as the current limit, back up to the ceiling."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.cond = threading.Condition()
        self._streak = 0
        self._quiet_until = 0.0

    def acquire(self, cancelled: threading.Event) -> bool:
        with self.cond:
            while self.in_flight >= self.limit and not cancelled.is_set():
                self.cond.wait(0.2)  # a timeout keeps Ctrl-C prompt in the main thread
            if cancelled.is_set():
                return False
            self.in_flight += 1
            return True

    def release(self, succeeded: bool) -> None:
        with self.cond:
            self.in_flight -= 1
            if succeeded:
                self._streak += 1
                if self._streak >= self.limit and self.limit < self.ceiling:
                    self.limit += 1
                    self._streak = 0
            self.cond.notify_all()

    def slow_down(self, pause_until: float) -> None:
        """Every job in flight may get its 429 from the same burst: that is one signal, not N."""
        with self.cond:
            now = time.monotonic()
            if now < self._quiet_until:
                return
            self.limit = max(1, self.limit // 2)
            self._streak = 0
            self._quiet_until = max(pause_until, now + 1.0)

    def wait_idle(self) -> None:
        with self.cond:
            while self.in_flight:
                self.cond.wait(0.2)


@dataclass
class SharedRetryPolicy(http.RetryPolicy):
    """The one RetryPolicy of a batch: a 429's pause holds every job, and tells the limit."""

    on_hold: Callable[[float], None] | None = None

    def hold(self, seconds: float) -> None:
        super().hold(seconds)
        if self.on_hold:
            self.on_hold(self.pause_until)


class Cancelled(Exception):
    """Ctrl-C reached a job while it was downloading: its temporary file is removed."""


class _CancelGuard:
    """Stands in for a download's progress bar: stops the download at its next chunk after Ctrl-C."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    def update(self, completed: int, total: int | None = None) -> None:
        if self.cancelled.is_set():
            raise Cancelled

    def done(self) -> None:
        pass


class Runner:
    """Starts each job when the limit allows, on its own thread; each job appends its own record."""

    def __init__(self, run: list[Job], options: BatchOptions, root: Path, report: Report, records: manifest.Manifest) -> None:
        self.jobs = run
        self.options = options
        self.root = root
        self.report = report
        self.limit = AdaptiveLimit(options.concurrency)
        self.budget = ImageBudget(options.max_total_images)
        self.left: list[Job] = []  # jobs the budget had no room for when their turn came
        self.cancelled = threading.Event()
        self.state = threading.Condition()
        self.saving = 0
        self.manifest = records
        self.connections = self._connect()

    def _connect(self) -> Connections:
        settings = self.jobs[0].plan.settings
        timeout = float(settings["timeout"])
        policy = SharedRetryPolicy(retries=int(settings["retries"]), on_hold=self.limit.slow_down)
        remote = next((j.plan for j in self.jobs if not j.plan.offline), None)
        api = http.api_client(remote.base_url, require_key(remote), timeout) if remote else None
        return Connections(api=api, downloads=http.download_client(timeout), policy=policy)

    def run(self) -> None:
        try:
            for job in self.jobs:
                if self.report.stdout_gone.is_set():
                    break  # nobody reads the results any more: spend nothing more on them
                if not self.budget.reserve(job.images):
                    self.left.append(job)
                    continue
                if not self.limit.acquire(self.cancelled):
                    break
                self.report.started()
                threading.Thread(target=self._worker, args=(job,), name=f"imgen-line-{job.line}", daemon=True).start()
            self.limit.wait_idle()
        except KeyboardInterrupt:
            self._stop_saving()
            raise
        self._close()

    def _stop_saving(self) -> None:
        """No job starts saving after this; those already saving finish or abort and clean up.
        Jobs still waiting for the API are abandoned: they have written nothing."""
        with self.state:
            self.cancelled.set()
            deadline = time.monotonic() + INTERRUPT_GRACE
            while self.saving and time.monotonic() < deadline:
                self.state.wait(0.1)

    def _close(self) -> None:
        self.manifest.close()
        for client in (self.connections.api, self.connections.downloads):
            if client is not None:
                client.close()

    def _worker(self, job: Job) -> None:
        result: JobResult | None = None
        try:
            result = self._one(job)
        except BaseException as exc:  # noqa: BLE001 - a bug in one job must not hang the batch
            error = ImgenError(f"internal error: {type(exc).__name__}: {exc}", "this is a bug in imgen; run again with --debug and report it")
            result = JobResult(job, "failed", error=error)
            self.report.finished(result)
        finally:
            if result is not None and result.error is not None and result.error.exit_code == ExitCode.RATE_LIMIT:
                self.limit.slow_down(time.monotonic())
            self.limit.release(result is not None and result.status == "ok")

    def _one(self, job: Job) -> JobResult | None:
        """Run one job and report it; None when Ctrl-C came first and nothing was written."""
        started = time.monotonic()
        begun = ledger.now()
        tasks = [job.resume] if job.resume is not None else []

        def submitted(ref: TaskRef) -> None:
            tasks.append(ref)
            self.manifest.append(manifest.task_record(job, ref))  # before the first poll: a re-run finds it

        hooks = Hooks(
            retry=lambda text: self.report.detail(f"imgen: retry: line {job.line}: {text}"),
            warn=lambda text: self.report.warn(f"line {job.line}: {text}"),
            download_task=lambda description, total: _CancelGuard(self.cancelled),
            task_submitted=submitted,
        )
        try:
            response = pipeline.call_api(job.plan, hooks, self.connections, resume=job.resume)
        except ImgenError as exc:
            if self.cancelled.is_set():
                return None
            result = JobResult(job, "failed", error=exc)
            task = tasks[-1] if tasks else None
            elapsed = time.monotonic() - started
            self._finish(result, manifest.build_record(job, None, exc, self.root, elapsed, task), started=begun, elapsed=elapsed)
            return result
        with self.state:
            if self.cancelled.is_set():
                # Interrupted while the API worked: nothing is saved, and the images the response
                # spooled to temporary files while it was read go with it.
                discard(response)
                return None
            self.saving += 1
        try:
            self._cap(job, response)
            outcome = Outcome(plan=job.plan, response=response)
            save_all(job.plan, response, hooks, outcome, self.connections)
            pipeline.mark_task(outcome)
            error = outcome.failed[0].error if outcome.failed else None
            files = [s.image.path for s in outcome.saved if s.image.path is not None]
            result = JobResult(job, "failed" if error else "ok", files, error)
            elapsed = time.monotonic() - started
            self._finish(result, manifest.build_record(job, outcome, error, self.root, elapsed, tasks[-1] if tasks else None), outcome,
                         started=begun, elapsed=elapsed)
            return result
        except Cancelled:
            return None
        finally:
            with self.state:
                self.saving -= 1
                self.state.notify_all()

    def _cap(self, job: Job, response: Any) -> None:
        """No more images saved than the job reserved of --max-total-images: an API may answer
        with more than it was asked for (several URLs to one result), and the cap is the run's."""
        if self.budget.total is None:
            return
        got = sum(not item.failed for item in response.items)
        dropped = keep_reserved(response, job.images)
        if dropped:
            self.report.warn(
                f"line {job.line}: the API returned {got} images for {job.images} asked; {dropped} not saved, "
                f"to keep --max-total-images {self.budget.total}"
            )

    def _finish(self, result: JobResult, record: dict[str, Any], outcome: Outcome | None = None, started: str = "",
                elapsed: float = 0.0) -> None:
        """Sidecars, then the manifest line, then stdout: a path is printed only once it is recorded;
        then the ledger's row, which can fail the job no more than a log line could."""
        try:
            if self.options.sidecar and record["images"]:
                manifest.write_sidecars(record, self.root)
            self.manifest.append(record)
        except ImgenError as exc:
            # Unrecorded, the job is made again by the next run: its paths must not reach stdout
            # as if it were done, and this failure, not an earlier item's, is what decides that.
            result.status, result.error, result.files = "failed", exc, []
        self.report.finished(result)
        ledger.write(result.job.plan, outcome, None if outcome is not None else result.error, started=started, duration=elapsed,
                     warn=lambda text: self.report.detail(f"imgen: warning: line {result.job.line}: {text}"))


# --------------------------------------------------------------------------- output


class _ConsoleStream:
    """Lets Messages write above the live display instead of through it."""

    def __init__(self, display: BatchDisplay) -> None:
        self.display = display

    def write(self, text: str) -> None:
        for line in text.rstrip("\n").split("\n"):
            self.display.print(line)

    def flush(self) -> None:
        pass


class BatchDisplay:
    """One live line on stderr: bar, done/total, failed, in flight, ETA."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed, {task.fields[running]} in flight, ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,  # stdout carries data, never the display
            redirect_stderr=False,
        )
        self.task = self.progress.add_task("batch", total=total, failed=0, running=0)
        self.progress.start()

    def update(self, done: int, failed: int, running: int) -> None:
        self.progress.update(self.task, completed=done, failed=failed, running=running, refresh=True)

    def print(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text.from_ansi(text), soft_wrap=True, highlight=False)

    def close(self) -> None:
        self.progress.stop()


class Report:
    """stdout (paths, or one JSON line per job) and stderr (errors, progress), one writer at a time."""

    def __init__(self, messages: Messages, *, json_out: bool, total: int, started: float) -> None:
        self.messages = messages
        self.json_out = json_out
        self.lock = threading.RLock()
        self.results: list[JobResult] = []
        self.stdout_gone = threading.Event()
        self.running = 0
        self.started_at = started
        self.display = BatchDisplay(total) if total and not messages.quiet and progress_allowed() else None
        self._stream = messages.stream
        if self.display:
            messages.stream = _ConsoleStream(self.display)

    def data(self, line: str) -> None:
        with self.lock:
            if self.stdout_gone.is_set():
                return
            if self.display and sys.stdout.isatty():
                self.display.print(line)  # the same terminal: above the bar, not through it
                return
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                self.stdout_gone.set()  # `| head -3`: the reader has all it wanted

    def detail(self, text: str) -> None:
        with self.lock:
            self.messages.detail(text)

    def warn(self, text: str) -> None:
        with self.lock:
            self.messages.warn(text)

    def started(self) -> None:
        with self.lock:
            self.running += 1
            self._refresh()

    def finished(self, result: JobResult) -> None:
        with self.lock:
            if result.status != "skipped" and result.status != "left":
                self.running -= 1
            self.results.append(result)
            if result.error is not None:
                self.messages.error(f"line {result.job.line}: {result.error.message}", result.error.hint)
            if self.json_out:
                self.data(json.dumps(result.document(), ensure_ascii=False))
            elif result.status in ("ok", "failed"):
                for path in result.files:
                    self.data(str(path))
            self._refresh()

    def _refresh(self) -> None:
        if self.display:
            ran = [r for r in self.results if r.status in ("ok", "failed")]
            self.display.update(len(ran), sum(r.status == "failed" for r in ran), self.running)

    def close(self) -> None:
        if self.display:
            self.display.close()
            self.messages.stream = self._stream
            self.display = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def summary(self, interrupted: bool = False) -> str:
        elapsed = time.monotonic() - self.started_at
        images = sum(len(r.files) for r in self.results if r.status == "ok")
        text = (f"{_count(images, 'image')} saved by {_count(self.count('ok'), 'job')}, {_count(self.count('failed'), 'job')} failed, "
                f"{self.count('skipped')} skipped in {elapsed:.1f}s")
        if interrupted:
            return f"imgen: batch: interrupted: {text}; run the same command again to continue"
        return f"imgen: batch: {text}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- the command


def run(options: BatchOptions, messages: Messages) -> int:
    """The whole batch; returns the exit code. Raises UsageError before anything is sent."""
    started = time.monotonic()
    root = output_root(options)
    all_jobs = load(options, root, messages)
    remote = next((j.plan for j in all_jobs if not j.plan.offline), None)
    if remote is not None:
        require_key(remote)  # a missing key fails the batch once, before any request
    manifest.check(root / manifest.MANIFEST_NAME)
    if options.dry_run:  # sends and writes nothing, so it needs no lock: it may look while a run goes on
        return _dry_run(select(all_jobs, options, root, messages), options, messages, len(all_jobs))
    # Held from before the manifest is read to the end: a second runner reading it meanwhile
    # would take every job in flight here for undone, and pay for it again.
    with lock.acquire(root, options.shard, wait=options.wait_lock, on_wait=messages.info):
        return _run_locked(all_jobs, options, root, messages, started)


def _run_locked(all_jobs: list[Job], options: BatchOptions, root: Path, messages: Messages, started: float) -> int:
    selection = select(all_jobs, options, root, messages)
    _shard_note(selection, options, messages, len(all_jobs))
    records = manifest.Manifest(root / manifest.MANIFEST_NAME)
    if selection.run:
        # Jobs call the API before they save: an unwritable directory, or a manifest that cannot
        # take records, must fail the batch first, or every job is paid for and then lost.
        for directory in dict.fromkeys([root, *(job.directory for job in selection.run)]):
            check_writable(directory)
        records.open()

    report = Report(messages, json_out=options.json_out, total=len(selection.run), started=started)
    interrupted = False
    try:
        for result in selection.skipped:
            report.finished(result)
        if selection.run:
            runner = Runner(selection.run, options, root, report, records)
            runner.run()
            selection.left += runner.left
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        records.close()
        report.close()
        for job in selection.left if not interrupted else []:
            report.finished(JobResult(job, "left"))
        messages.info(report.summary(interrupted))
        if selection.budget_note and not interrupted:
            messages.warn(f"batch: {selection.budget_note}; raise the limit or run again to continue")
    if report.stdout_gone.is_set():
        raise BrokenPipeError  # the CLI's usual quiet exit when the reader went away
    return int(exit_code(report.results, bool(selection.left)))


def exit_code(results: list[JobResult], left: bool) -> ExitCode:
    failed = sorted((r for r in results if r.status == "failed"), key=lambda r: r.job.line)
    succeeded = any(r.status in ("ok", "skipped") for r in results)
    if failed and not succeeded:
        return failed[0].error.exit_code if failed[0].error else ExitCode.INTERNAL
    if failed or left:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _shard_note(selection: Selection, options: BatchOptions, messages: Messages, total: int) -> None:
    if options.shard:
        mine = len(selection.run) + len(selection.skipped) + len(selection.left)
        messages.detail(f"imgen: batch: shard {options.shard[0]}/{options.shard[1]}: {mine} of {total} jobs")


def likely_names(job: Job) -> list[str]:
    """The files a job will write: its stems, with the extension of the format it asks for (the
    bytes decide in the end; PNG is what every model sends unless told otherwise)."""
    from ..files.imagetype import EXTENSIONS

    fmt = job.plan.request.fields.get("output_format") or job.plan.request.params.get("output_format") or "png"
    return [f"{stem}.{EXTENSIONS.get(str(fmt), str(fmt))}" for stem in file_names(job)]


def _dry_run(selection: Selection, options: BatchOptions, messages: Messages, total: int) -> int:
    from ..report import emit_lines

    _shard_note(selection, options, messages, total)
    rows = [(j, "run") for j in selection.run] + [(r.job, "skipped") for r in selection.skipped] + [(j, "left") for j in selection.left]
    rows.sort(key=lambda row: row[0].line)
    lines = []
    for job, status in rows:
        if options.json_out:
            call = pipeline.describe_request(job.plan)
            document = {"key": job.key, "line": job.line, "status": status, "directory": str(job.directory), "names": file_names(job)}
            document["body"] = manifest.shown_request(call["body"])
            if job.cost is not None:
                document["cost_usd"] = job.cost
            lines.append(json.dumps(document, ensure_ascii=False))
        else:
            shown = ", ".join(str(job.directory / name) for name in likely_names(job))
            lines.append(f"line {job.line}: {status:7} {job.plan.request.model}  {shown}  {job.key[:12]}")
    emit_lines(lines)
    if selection.budget_note:
        messages.warn(f"batch: {selection.budget_note}")
    return int(ExitCode.OK)
