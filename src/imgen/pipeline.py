"""One generation, top to bottom:

settings (flag > env > profile > default) → capability check (all problems, before any I/O)
→ provider.build_request (pure) → http.send (retries, error mapping) → provider.parse
→ save each image (download or decode → verify → atomic write) → Outcome, which the CLI reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import capabilities, names, providers
from .errors import AuthError, BadResponse, ExitCode, ImgenError, NetworkError, RequestRejected, UsageError
from .request import GenerateRequest
from .results import GenerationResponse, ImageResult
from .save import DEFAULT_MAX_BYTES, ImageWriter, SavedImage, check_writable, iter_b64, write_all
from .save import Session as SaveSession
from .settings import Settings, Sourced, mask_key, resolve

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


@dataclass
class Target:
    """Where images go: a directory (names from the template), one named file, or stdout."""

    directory: Path
    file_name: str | None = None  # -o FILE
    stdout: bool = False


@dataclass
class Plan:
    settings: Settings
    request: GenerateRequest
    dialect: str
    warnings: list[str]
    target: Target
    template: str
    overwrite: bool = False
    no_download: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    api_key: Sourced | None = None
    save_partials: bool = False  # streaming: also save each partial image

    @property
    def base_url(self) -> str:
        return str(self.settings["base_url"]).rstrip("/")


@dataclass
class Saved:
    item: ImageResult
    image: SavedImage


@dataclass
class Failed:
    item: ImageResult
    error: ImgenError


@dataclass
class Outcome:
    plan: Plan
    response: GenerationResponse
    saved: list[Saved] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    urls: list[ImageResult] = field(default_factory=list)  # --no-download
    elapsed: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        if not self.failed:
            return ExitCode.OK
        if self.saved or self.urls:
            return ExitCode.PARTIAL
        return self.failed[0].error.exit_code


def prepare(
    prompt: str,
    *,
    flags: dict[str, Any],
    fields: dict[str, Any],
    params: dict[str, Any],
    output: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    no_download: bool = False,
    save_partials: bool = False,
    environ: dict[str, str] | None = None,
) -> Plan:
    """Resolve and check everything; raise UsageError listing every problem. No network I/O."""
    settings = resolve(flags, environ)
    model = str(settings["model"])
    merged_fields = {k: settings.get(k) for k in _profile_fields(settings)}
    merged_fields.update({k: v for k, v in fields.items() if v is not None})
    merged_params = dict(settings.get("params") or {})
    merged_params.update(params)
    request = GenerateRequest(prompt=prompt, model=model, fields=merged_fields, params=merged_params)

    spec = capabilities.lookup(model, settings["api"])
    dialect = "placeholder" if spec is not None and spec.dialect == "placeholder" else str(settings["api"])
    providers.get(dialect)  # an unknown dialect is a config error, before anything else
    result = capabilities.check(request, dialect, strict=strict)
    problems = list(result.problems)

    template = str(settings["name"])
    try:
        names.render(template, prompt=prompt, index=1, ext="png", model=model)
    except names.TemplateError as exc:
        problems.append(f"--name: {exc}")
    target = _target(output, settings, request.most_images(), problems)
    if no_download and target.stdout:
        problems.append("--no-download with -o -: nothing would be written to stdout; drop one of them")
    if problems:
        raise UsageError(
            "\n  ".join(problems) if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems),
            "nothing was sent; fix the flags above (imgen models show MODEL lists what it accepts)",
        )
    max_bytes = settings.get("max_download") or DEFAULT_MAX_BYTES
    api_key = settings.api_key() if dialect != "placeholder" else None
    return Plan(
        settings=settings,
        request=request,
        dialect=dialect,
        warnings=[*settings.warnings, *result.warnings],
        target=target,
        template=template,
        overwrite=overwrite,
        no_download=no_download,
        max_bytes=int(max_bytes),
        api_key=api_key,
        save_partials=save_partials,
    )


def _profile_fields(settings: Settings) -> list[str]:
    from .settings import GENERATION_FIELDS

    return [k for k in GENERATION_FIELDS if settings.get(k) is not None]


def _target(output: str | None, settings: Settings, n: int, problems: list[str]) -> Target:
    if output == "-":
        if n != 1:
            problems.append(f"-o -: raw bytes on stdout hold one image, but this request can return {n}; use -n 1 (and --max-images 1) or -o DIR")
        if sys.stdout.isatty():
            problems.append("-o -: stdout is a terminal; redirect it to a file or a pipe (imgen ... -o - > out.png)")
        return Target(Path("."), stdout=True)
    raw = output if output is not None else str(settings["output_dir"])
    path = Path(raw).expanduser()
    if output is not None and not raw.endswith(("/", "\\")) and path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
        if n != 1:
            problems.append(f"-o {raw}: a single file holds one image, but -n is {n}; use -o DIR for several")
        return Target(path.parent, file_name=path.name)
    if path.exists() and not path.is_dir():
        problems.append(f"-o {raw}: exists and is not a directory; give a directory or a new file name ending in .png/.jpg/.webp")
    return Target(path)


def describe_request(plan: Plan) -> dict[str, Any]:
    """What would be sent, for --dry-run: the key masked, with a curl equivalent."""
    if plan.dialect == "placeholder":
        return {"offline": True, "model": plan.request.model, "body": plan.request.body()}
    call = providers.get(plan.dialect).build_request(plan.request)
    url = plan.base_url + call.path
    key_env = plan.settings.get("api_key_env") or "IMGEN_API_KEY"
    key = plan.api_key.value if plan.api_key else None
    headers = {"Authorization": f"Bearer {mask_key(key)}" if key else "(no key set)", "Content-Type": "application/json"}
    body = json.dumps(call.body, ensure_ascii=False)
    curl = (
        f"curl -sS -X {call.method} {shlex.quote(url)} "
        f'-H "Authorization: Bearer ${key_env}" -H "Content-Type: application/json" -d {shlex.quote(body)}'
    )
    return {"method": call.method, "url": url, "headers": headers, "body": call.body, "curl": curl, "cost": cost_of(plan)}


def cost_of(plan: Plan, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cost from the cached catalog (`imgen models --remote` fills it); never fetched here,
    so --dry-run stays free of network traffic and one-shot runs stay fast."""
    if plan.dialect == "placeholder":
        return {"usd": 0.0, "note": "the offline placeholder is free"}
    from . import catalog, cost

    cached = catalog.read_cache(plan.base_url)
    if cached is None:
        return {"usd": None, "note": "no cached price list for this base URL; run: imgen models --remote"}
    usd, note = cost.estimate_cost(plan.request.model, plan.request.n, cached, usage)
    return {"usd": usd, "note": note}


def require_key(plan: Plan) -> str | None:
    if plan.dialect == "placeholder":
        return None
    if plan.api_key is None:
        raise AuthError(
            plan.settings.key_problem or f"no API key for profile {plan.settings.profile!r}",
            plan.settings.key_hint(),
        )
    return str(plan.api_key.value)


@dataclass
class Hooks:
    """Callbacks into the user interface; the pipeline never prints."""

    retry: Callable[[str], None] = lambda text: None
    waiting: Callable[[str], Any] | None = None
    download_task: Callable[[str, int | None], Any] | None = None
    stream_event: Callable[[Any], None] | None = None  # each partial/completed image of a stream (stream.Update)


@dataclass
class Connections:
    """What the generations of a batch share: open clients (pooled connections, left open for
    the next job) and one RetryPolicy, so a 429 pauses every job, not only the one that got it."""

    api: Any = None  # http.api_client(...) for this plan's base URL and key
    downloads: Any = None  # http.download_client(...)
    policy: Any = None  # http.RetryPolicy


def call_api(plan: Plan, hooks: Hooks, connections: Connections | None = None) -> GenerationResponse:
    if plan.dialect == "placeholder":
        return providers.get("placeholder").generate(plan.request)
    from . import http

    key = require_key(plan)
    provider = providers.get(plan.dialect)
    call = provider.build_request(plan.request)
    shared = connections or Connections()
    policy = shared.policy or http.RetryPolicy(retries=int(plan.settings["retries"]))
    opened = http.api_client(plan.base_url, key, float(plan.settings["timeout"])) if shared.api is None else None
    spools: list[ImageWriter] = []
    try:
        with opened if opened is not None else contextlib.nullcontext(shared.api) as client:
            response = http.send(
                client, call.method, call.path, json_body=call.body, policy=policy, on_retry=hooks.retry,
                target="the API", stream=True,
            )
            try:
                body = _read_body(response, plan, spools)
            finally:
                response.close()
        parsed = provider.parse(_json(body, response))
        _attach_spools(parsed, spools)
    except BaseException:
        for writer in spools:
            writer.abort()
        raise
    parsed.request_id = parsed.request_id or response.headers.get("x-request-id")
    return parsed


SMALL_BODY = 4 * 1024 * 1024


def _read_body(response: Any, plan: Plan, spools: list[ImageWriter]) -> bytes:
    """The body, with large base64 images already decoded into spooled writers (so memory stays
    flat whatever the image size); small bodies are simply read."""
    import httpx

    from . import b64split

    length = response.headers.get("content-length")
    try:
        if length is not None and length.isdigit() and int(length) <= SMALL_BODY:
            return response.read()

        def spool(index: int) -> ImageWriter:
            writer = ImageWriter(plan.target.directory, max_bytes=plan.max_bytes, source=f"image {index + 1}")
            spools.append(writer)
            return writer

        body, streams = b64split.split(response.iter_bytes(), spool)
    except httpx.HTTPError as exc:
        raise NetworkError(
            f"the connection dropped while reading the API's answer ({type(exc).__name__})",
            "retry; the request may already have been billed",
        ) from exc
    for writer, stream_ in zip(spools, streams):
        if stream_.error:
            writer.spool_error = stream_.error
    return body


def _attach_spools(parsed: GenerationResponse, spools: list[ImageWriter]) -> None:
    from .b64split import PLACEHOLDER

    used: set[int] = set()
    for item in parsed.items:
        if item.b64_json and item.b64_json.startswith(PLACEHOLDER) and not item.failed:
            number = int(item.b64_json[len(PLACEHOLDER) :])
            writer = spools[number]
            item.b64_json = None
            if writer.spool_error:
                item.error_code, item.error_message = writer.spool_error
            else:
                item.spooled = writer
                used.add(number)
    for number, writer in enumerate(spools):
        if number not in used:  # failed, or a b64_json where no image item was: nothing to keep
            writer.abort()


def discard(response: GenerationResponse) -> None:
    """Drop the temporary files of images that will not be saved (a cancelled batch job)."""
    for item in response.items:
        if item.spooled is not None:
            item.spooled.abort()
            item.spooled = None


def _json(body: bytes, response: Any) -> Any:
    from .http import json_body

    return json_body(
        body, what=f"the API answered {response.status_code} with a body that", content_type=response.headers.get("content-type")
    )


def item_error(item: ImageResult) -> ImgenError:
    text = f"image {item.index + 1} failed: {item.error_message} (code {item.error_code})"
    if item.error_code in ("no_image", "bad_item", "invalid_base64", "too_large"):
        return BadResponse(text, "the API answered with an unusable item; retry", code=item.error_code)
    return RequestRejected(text, "change the prompt or options for this image and try again", code=item.error_code)


def name_for(plan: Plan, index: int, now: dt.datetime) -> Callable[[str], str]:
    """The final name of image `index` (0-based), given its extension: -o FILE, or the template.
    One `now` per run, so {date} and {time} agree across its images."""
    if plan.target.file_name:
        return lambda ext: _file_name_with_ext(plan.target.file_name, ext)
    return lambda ext: names.render(
        plan.template, prompt=plan.request.prompt, index=index + 1, ext=ext, model=plan.request.model,
        date=now.date(), now=now, seed=plan.request.fields.get("seed"),
    )


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

    directory = plan.target.directory  # for -o -, the staging directory run() made
    downloads = None
    if any(i.url and not i.b64_json and i.data is None for i in pending):
        from . import http, urlpolicy

        shared_client = connections.downloads if connections else None
        downloads = (
            shared_client if shared_client is not None else http.download_client(float(plan.settings["timeout"])),
            urlpolicy.UrlPolicy.for_api(plan.base_url),
            http.RetryPolicy(retries=int(plan.settings["retries"])),
        )
    session = SaveSession()

    def one(item: ImageResult) -> Saved | Failed:
        deadline = time.monotonic() + float(plan.settings["timeout"])  # each download its own --timeout
        make_writer = lambda: ImageWriter(directory, max_bytes=plan.max_bytes, source=f"image {item.index + 1}", session=session)  # noqa: E731
        try:
            if item.spooled is not None:
                item.spooled.session = session
                saved = item.spooled.commit(name_for(plan, item.index, now), overwrite=plan.overwrite)
            elif item.data is not None or item.b64_json:
                with make_writer() as writer:
                    write_all(writer, [item.data] if item.data is not None else iter_b64(item.b64_json or ""))
                    saved = writer.commit(name_for(plan, item.index, now), overwrite=plan.overwrite)
            else:
                from . import download

                client, url_policy, policy = downloads
                task = hooks.download_task(f"image {item.index + 1}", None) if hooks.download_task else None
                try:
                    saved = download.fetch(
                        client,
                        item.url,
                        make_writer,
                        name_for(plan, item.index, now),
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
            return Saved(item, saved)
        except ImgenError as exc:
            return Failed(item, exc)

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
        _to_stdout(outcome)


def _file_name_with_ext(file_name: str, ext: str) -> str:
    path = Path(file_name)
    if path.suffix.lower().lstrip(".") in ({ext} | ({"jpg", "jpeg"} if ext in ("jpg", "jpeg") else set())):
        return file_name
    return path.stem + "." + ext


def _to_stdout(outcome: Outcome) -> None:
    import shutil

    for saved in outcome.saved:
        with open(saved.image.path, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer, 1024 * 1024)
        sys.stdout.buffer.flush()
        saved.image.path = None


@contextlib.contextmanager
def _staging(plan: Plan):  # noqa: ANN202 - a context manager
    """For -o -: images are verified in a private temporary directory, then copied to stdout;
    the directory goes whatever happens."""
    if not plan.target.stdout:
        yield
        return
    import shutil
    import tempfile

    plan.target.directory = Path(tempfile.mkdtemp(prefix="imgen-"))
    try:
        yield
    finally:
        shutil.rmtree(plan.target.directory, ignore_errors=True)


def run(plan: Plan, hooks: Hooks | None = None) -> Outcome:
    hooks = hooks or Hooks()
    started = time.monotonic()
    if not plan.target.stdout and not plan.no_download:
        check_writable(plan.target.directory)  # before the API call: an unwritable -o costs nothing
    with _staging(plan):
        if plan.request.stream:
            from . import stream

            if stream.wanted(plan):
                # Images are saved as their events arrive, so the stream yields the Outcome itself.
                outcome = stream.run(plan, hooks)
                outcome.elapsed = time.monotonic() - started
                return outcome
        waiting = hooks.waiting(f"generating with {plan.request.model}") if hooks.waiting else contextlib.nullcontext()
        with waiting:
            response = call_api(plan, hooks)
        outcome = Outcome(plan=plan, response=response)
        save_all(plan, response, hooks, outcome)
    outcome.elapsed = time.monotonic() - started
    return outcome


def outcome_document(outcome: Outcome) -> dict[str, Any]:
    resp = outcome.response
    images = []
    for s in outcome.saved:
        entry: dict[str, Any] = {
            "index": s.item.index + 1,
            "path": str(s.image.path) if s.image.path else None,
            "bytes": s.image.bytes,
            "sha256": s.image.sha256,
            "format": s.image.format,
        }
        for key in ("url", "revised_prompt", "size"):
            if getattr(s.item, key):
                entry[key] = getattr(s.item, key)
        entry.update(_stream_extras(s.item))
        images.append(entry)
    document: dict[str, Any] = {
        "model": outcome.plan.request.model,
        "profile": outcome.plan.settings.profile,
        "created": resp.created,
        "images": images,
    }
    if resp.request_id:
        document["request_id"] = resp.request_id
    if outcome.urls:
        document["urls"] = [
            {"index": i.index + 1, "url": i.url, **({"size": i.size} if i.size else {})} for i in outcome.urls
        ]
    if outcome.failed:
        document["errors"] = [{"index": f.item.index + 1, **f.error.to_dict(), **_stream_extras(f.item)} for f in outcome.failed]
    if resp.usage is not None:
        document["usage"] = resp.usage
    document["cost"] = cost_of(outcome.plan, resp.usage)
    document.update({k: v for k, v in resp.meta.items() if k not in document})
    document["exit_code"] = int(outcome.exit_code)
    return document


def _stream_extras(item: ImageResult) -> dict[str, Any]:
    # A streamed image reports its own usage (one completed event each) and the partials before it.
    return {k: item.extra[k] for k in ("usage", "partials") if k in item.extra}
