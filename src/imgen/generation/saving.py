"""What came back, onto disk: each image decoded or downloaded, verified, and committed under
its name (the template's, or -o FILE's), or copied to stdout for -o -."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import faults
from ..errors import ImgenError
from ..files import names
from ..files.writer import ImageWriter, WriteError, iter_b64, write_all
from ..files.writer import Session as SaveSession
from ..results import Failed, GenerationResponse, ImageResult, Saved
from .hooks import Connections, Hooks
from .outcome import Outcome
from .plan import Plan
from .provenance import Keeper


def item_error(item: ImageResult) -> ImgenError:
    return faults.item_error(item.error_code, item.error_message, item.index)


def name_for(plan: Plan, index: int, now: dt.datetime, first: int = 1) -> Callable[[str], str]:
    """The final name of image `index` (0-based), given its extension: -o FILE, or the template
    with {index} counting from `first`. One `now` per run, so {date} and {time} agree across its images."""
    if plan.target.file_name:
        file_name = plan.target.file_name
        return lambda ext: _file_name_with_ext(file_name, ext)
    return lambda ext: names.render(
        plan.template, prompt=plan.request.prompt, index=index + first, ext=ext, model=plan.request.model,
        date=now.date(), now=now, seed=plan.request.fields.get("seed"), stem=plan.request.inputs[0].stem if plan.request.inputs else None,
    )


def first_free_index(plan: Plan, count: int, now: dt.datetime) -> int:
    """Where a run's {index} starts so that its `count` names are all free: a second run of
    a-cat-1, a-cat-2 writes a-cat-3, a-cat-4 (names that sort), decided once, before the images
    are saved side by side and would otherwise race for the next free number."""
    if plan.target.file_name or plan.overwrite or "{index}" not in plan.template:
        return 1
    try:
        taken = {p.stem.casefold() for p in plan.target.directory.iterdir()}
    except OSError:
        return 1
    if not taken:
        return 1
    stem = lambda index: name_for(plan, index, now, 1)("png")[: -len(".png")].casefold()  # noqa: E731
    first = 1
    while any(stem(first - 1 + i) in taken for i in range(count)) and first < 100_000:
        first += 1
    return first


def _file_name_with_ext(file_name: str, ext: str) -> str:
    path = Path(file_name)
    if path.suffix.lower().lstrip(".") in ({ext} | ({"jpg", "jpeg"} if ext in ("jpg", "jpeg") else set())):
        return file_name
    return path.stem + "." + ext


def save_all(plan: Plan, response: GenerationResponse, hooks: Hooks, outcome: Outcome, connections: Connections | None = None) -> None:
    now = dt.datetime.now()

    pending: list[ImageResult] = []
    for item in response.items:
        if item.failed:
            outcome.failed.append(Failed(item, item_error(item)))
        elif plan.no_download and item.url:
            outcome.urls.append(item)
        else:
            pending.append(item)
    if not pending:
        return

    directory = plan.target.directory  # for -o -, the staging directory
    downloads = None
    if any(i.url and not i.b64_json and i.data is None for i in pending):
        from ..transport import http, urlpolicy

        shared_client = connections.downloads if connections else None
        downloads = (
            shared_client if shared_client is not None else http.download_client(float(plan.settings["timeout"])),
            urlpolicy.UrlPolicy.for_api(plan.base_url),
            http.RetryPolicy(retries=int(plan.settings["retries"])),
        )
    session = SaveSession()
    first = first_free_index(plan, max(i.index for i in pending) + 1, now)

    def one(item: ImageResult) -> Saved | Failed:
        deadline = time.monotonic() + float(plan.settings["timeout"])  # each download its own --timeout
        keeper = Keeper(plan, item, hooks.note, request_id=response.request_id, task_id=response.meta.get("task_id"))

        def make_writer() -> ImageWriter:
            writer = ImageWriter(directory, max_bytes=plan.max_bytes, source=f"image {item.index + 1}", session=session)
            writer.finish = keeper.finish  # the provenance goes in before the image gets its name
            writer.arm(keeper)  # ... as the bytes arrive, where the format allows
            return writer

        try:
            if item.spooled is not None:
                item.spooled.session = session
                item.spooled.finish = keeper.finish
                saved = item.spooled.commit(name_for(plan, item.index, now, first), overwrite=plan.overwrite)
            elif item.data is not None or item.b64_json:
                with make_writer() as writer:
                    write_all(writer, [item.data] if item.data is not None else iter_b64(item.b64_json or ""))
                    saved = writer.commit(name_for(plan, item.index, now, first), overwrite=plan.overwrite)
            else:
                from ..transport import download

                client, url_policy, policy = downloads
                task = hooks.download_task(f"image {item.index + 1}", None) if hooks.download_task else None
                try:
                    saved = download.fetch(
                        client,
                        item.url,
                        make_writer,
                        name_for(plan, item.index, now, first),
                        policy=policy,
                        url_policy=url_policy,
                        deadline=deadline,
                        overwrite=plan.overwrite,
                        on_progress=(lambda done, total: task.update(done, total)) if task else None,
                        on_retry=hooks.retry,
                    )
                finally:
                    if task:
                        task.done()
            keeper.after(saved.path)
            return Saved(item, saved)
        except ImgenError as exc:
            return Failed(item, exc)
        except OSError as exc:  # the sidecar of an image that is saved
            return Failed(item, WriteError(f"cannot write the sidecar of image {item.index + 1}: {exc.strerror or exc}",
                                           "check the output directory's permissions and free space"))

    try:
        if len(pending) == 1:
            results = [one(pending[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(4, len(pending))) as pool:
                try:
                    results = list(pool.map(one, pending))
                except KeyboardInterrupt:
                    session.cancel()  # Ctrl-C reaches only this thread; the workers stop at their next chunk
                    raise
    except BaseException:
        discard(response)
        raise
    finally:
        if downloads and downloads[0] is not shared_client:
            downloads[0].close()
    for result in results:
        (outcome.saved if isinstance(result, Saved) else outcome.failed).append(result)
    outcome.saved.sort(key=lambda s: s.item.index)
    outcome.failed.sort(key=lambda f: f.item.index)
    if plan.target.stdout:
        to_stdout(outcome)


def discard(response: GenerationResponse) -> None:
    """Drop the temporary files of images that will not be saved (a cancelled batch job)."""
    for item in response.items:
        if item.spooled is not None:
            item.spooled.abort()
            item.spooled = None


def to_stdout(outcome: Outcome) -> None:
    for saved in outcome.saved:
        with open(saved.image.path, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer, 1024 * 1024)
        sys.stdout.buffer.flush()
        saved.image.path = None


@contextlib.contextmanager
def staging(plan: Plan) -> Iterator[None]:
    """For -o -: images are verified in a private temporary directory, then copied to stdout;
    the directory goes whatever happens."""
    if not plan.target.stdout:
        yield
        return
    plan.target.directory = Path(tempfile.mkdtemp(prefix="imgen-"))
    try:
        yield
    finally:
        shutil.rmtree(plan.target.directory, ignore_errors=True)
