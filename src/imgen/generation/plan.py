"""The checked plan of one generation: settings resolved, the dialect chosen, the request
checked against its model's record, the output target decided. No network I/O: a Plan that
exists is one that may be sent."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

from .. import dialects, faults
from ..config.settings import GENERATION_FIELDS, Settings, Sourced, mask_key, resolve
from ..errors import AuthError, UsageError
from ..files import imagetype, names
from ..files.inputs import InputImage
from ..files.writer import DEFAULT_MAX_BYTES
from ..models import capabilities, preflight
from ..request import GenerateRequest
from ..transport.answer import DEFAULT_MAX_ANSWER

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
DEFAULT_DIALECT = "openai"  # for a model imgen has no record of, passed through unchecked
# Edits take longer than generations (the upload, then the work): the default wait is longer.
EDIT_TIMEOUT = 600.0


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
    spec: capabilities.ModelSpec | None = None  # the model's record; None for a model passed through unchecked
    overwrite: bool = False
    no_download: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_answer: int = DEFAULT_MAX_ANSWER  # decoded bytes of one API answer
    api_key: Sourced | None = None
    save_partials: bool = False  # streaming: also save each partial image
    job_key: str | None = None  # a batch job's key: its tasks are journalled under it
    sidecar: bool = False  # NAME.json beside each image, besides what --metadata writes into it
    notes: list[str] = field(default_factory=list)  # what imgen changed of what was asked, said on stderr

    @property
    def base_url(self) -> str:
        return str(self.settings["base_url"]).rstrip("/")

    @property
    def max_time(self) -> float:
        """Seconds one API call may take in all (transport.answer.deadline)."""
        return float(self.settings.get("max_time") or 900.0)

    @property
    def module(self) -> ModuleType:
        return dialects.get(self.dialect)

    @property
    def read_fault(self) -> Callable[[Any], faults.Fault]:
        """How this dialect's error bodies are read (the common shapes unless it has its own)."""
        return getattr(self.module, "read_fault", faults.read_fault)

    @property
    def offline(self) -> bool:
        return bool(getattr(self.module, "OFFLINE", False))


def choose_dialect(model: str, settings: Settings) -> str:
    """The model's own dialect, unless the profile forces one; an offline model stays offline
    whatever the profile says."""
    forced = settings.forced_dialect()
    spec = capabilities.lookup(model, forced)
    if spec is not None and getattr(dialects.get(spec.dialect), "OFFLINE", False):
        return spec.dialect
    if forced:
        return forced
    return spec.dialect if spec is not None else str(settings.get("api") or DEFAULT_DIALECT)


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
    inputs: Sequence[InputImage] = (),
    mask: InputImage | None = None,
    references: dict | None = None,
    known_problems: Sequence[str] = (),
) -> Plan:
    """Resolve and check everything; raise UsageError listing every problem. No network I/O.
    With `inputs` (and a `mask`) it is an edit of them. `references`: a batch's cache of the
    reference images it has read, shared by its jobs. `known_problems`: what the caller found
    already (an input that cannot be read), reported with the rest."""
    settings = resolve(flags, environ)
    model = str(settings["model"])
    merged_fields = {k: settings.get(k) for k in GENERATION_FIELDS if settings.get(k) is not None}
    _shape_from_the_command_line(merged_fields, fields)
    merged_fields.update({k: v for k, v in fields.items() if v is not None})
    merged_params = dict(settings.get("params") or {})
    merged_params.update(params)
    request = GenerateRequest(prompt=prompt, model=model, fields=merged_fields, params=merged_params, inputs=tuple(inputs), mask=mask)

    dialect = choose_dialect(model, settings)
    dialects.get(dialect)  # an unknown dialect is a config error, before anything else
    result = preflight.check(request, dialect, strict=strict)
    problems = [*known_problems, *result.problems]
    if request.edit:
        dialect = _edit_setup(request, result, settings, problems, references) or dialect

    template = str(settings["name"])
    if request.edit and settings.source("name") == "default":
        template = names.EDIT_TEMPLATE
    notes = []
    if template.strip() and "{ext}" not in template and Path(template).suffix.lower().lstrip(".") not in (*imagetype.EXTENSIONS.values(), "jpeg"):
        # The format is known only from the bytes: a name without it would be a file nothing opens.
        notes.append(f"--name {template!r} has no {{ext}}; .{{ext}} was added (the extension comes from the image's bytes)")
        template += ".{ext}"
    try:
        names.render(template, prompt=prompt, index=1, ext="png", model=model)
    except names.TemplateError as exc:
        problems.append(f"--name: {exc}")
    problems += _unsendable(request)
    target = _target(output, settings, request.most_images(), problems, request.sequential)
    if no_download and target.stdout:
        problems.append("--no-download with -o -: nothing would be written to stdout; drop one of them")
    if problems:
        raise UsageError.of(problems, "nothing was sent; fix the flags above (imgen models show MODEL lists what it accepts)")
    plan = Plan(
        settings=settings,
        request=request,
        dialect=dialect,
        warnings=[*settings.warnings, *result.warnings],
        notes=notes,
        target=target,
        template=template,
        spec=result.spec,
        overwrite=overwrite,
        no_download=no_download,
        max_bytes=int(settings.get("max_download") or DEFAULT_MAX_BYTES),
        max_answer=int(settings.get("max_answer") or DEFAULT_MAX_ANSWER),
        save_partials=save_partials,
    )
    plan.api_key = None if plan.offline else settings.api_key()
    return plan


def _unsendable(request: GenerateRequest) -> list[str]:
    """Values no JSON body can carry (NaN, Infinity: a config's `inf`), or text that is not UTF-8."""
    import json

    problems = []
    for name, value in {**request.fields, **request.params}.items():
        if isinstance(value, InputImage) or (isinstance(value, list | tuple) and value and isinstance(value[0], InputImage)):
            continue
        try:
            json.dumps(value, allow_nan=False, ensure_ascii=False, default=str).encode("utf-8")
        except ValueError:
            problems.append(f"{name}: not a number JSON can carry (NaN or Infinity); give a finite number")
        except UnicodeEncodeError:
            problems.append(f"{name}: not valid UTF-8 text")
    return problems


def _shape_from_the_command_line(defaults: dict[str, Any], given: dict[str, Any]) -> None:
    """A shape on the command line replaces the profile's, whichever way each was given: -s WxH
    drops a profile's aspect, --aspect a profile's WxH size (a 1K|2K|4K scale stays with it)."""
    if given.get("size") is None and given.get("aspect") is None:
        return  # no shape on the command line: the profile's stands, and models/aspect.py stays unloaded
    from ..models.aspect import SCALES

    if given.get("size") is not None and str(given["size"]).upper() not in SCALES:
        defaults.pop("aspect", None)
    if given.get("aspect") is not None and defaults.get("size") is not None and str(defaults["size"]).upper() not in SCALES:
        defaults.pop("size")


def _edit_setup(request: GenerateRequest, result: preflight.CheckResult, settings: Settings, problems: list[str],
                references: dict | None) -> str | None:
    """What an edit changes in the plan: the edit endpoint's dialect (an upload), or its inputs
    read as reference images (once the request has passed); and the longer default wait."""
    if settings.source("timeout") == "default":
        settings.values["timeout"] = Sourced(EDIT_TIMEOUT, "default for edits")
    edit = result.edit
    if edit is None or problems:
        return None
    if edit.route == "upload":
        return edit.dialect
    from ..files.refs import load_references

    try:
        request.fields["image"] = load_references(request.fields["image"], references)
    except UsageError as exc:
        problems.append(exc.message)
    return None


def _target(output: str | None, settings: Settings, n: int, problems: list[str], sequence: bool = False) -> Target:
    if output == "-":
        if n != 1:
            fix = "--max-images 1" if sequence else "-n 1"  # advice for the request in hand: a Seedream sequence counts otherwise
            problems.append(f"-o -: raw bytes on stdout hold one image, but this request can return {n}; use {fix} or -o DIR")
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


def require_key(plan: Plan) -> str | None:
    if plan.offline:
        return None
    if plan.api_key is None:
        raise AuthError(
            plan.settings.key_problem or f"no API key for profile {plan.settings.profile!r}",
            plan.settings.key_hint(),
        )
    return str(plan.api_key.value)


def describe_request(plan: Plan) -> dict[str, Any]:
    """What would be sent, for --dry-run: the key masked, with a curl equivalent."""
    if plan.offline:
        return {"offline": True, "model": plan.request.model, "body": plan.request.body()}
    call = plan.module.build(plan.request)
    url = plan.base_url + call.path
    key_env = plan.settings.get("api_key_env") or "IMGEN_API_KEY"
    key = plan.api_key.value if plan.api_key else None
    auth = f"Bearer {mask_key(key)}" if key else "(no key set)"
    curl = f'curl -sS -X {call.method} {shlex.quote(url)} -H "Authorization: Bearer ${key_env}"'
    if call.files:
        # curl -F: each file's type given, as curl's own guess (octet-stream) would be refused.
        parts = [f"{k}={v}" for k, v in (call.body or {}).items()]
        parts += [f"{f.name}=@{f.shown or f.path};type={f.content_type}" for f in call.files]  # curl reads @- from stdin too
        curl += "".join(f" -F {shlex.quote(p)}" for p in parts)
        files = [{"field": f.name, "path": f.shown or str(f.path), "content_type": f.content_type, "bytes": f.size} for f in call.files]
        headers = {"Authorization": auth, "Content-Type": "multipart/form-data"}
        return {"method": call.method, "url": url, "headers": headers, "body": call.body, "files": files, "curl": curl, "cost": cost_of(plan)}
    curl += ' -H "Content-Type: application/json" ' + _curl_data(call.body)
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    return {"method": call.method, "url": url, "headers": headers, "body": call.body, "curl": curl, "cost": cost_of(plan)}


def _curl_data(body: Any) -> str:
    """`-d 'JSON'`, or, when the body inlines image files, a here-doc that reads each file where
    its base64 goes: a command to copy, not megabytes to scroll past."""
    from ..files.refs import source_of

    inlined: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, str) and len(value) > 200 and (source := source_of(value)):
            token = f"@@imgen-file-{len(inlined)}@@"
            prefix = value.split(",", 1)[0] + "," if value.startswith("data:") else ""
            inlined[token] = prefix + f"$(base64 < {shlex.quote(source)} | tr -d '\\n')"
            return token
        return value

    text = json.dumps(mark(body), ensure_ascii=False)
    if not inlined:
        return f"-d {shlex.quote(text)}"
    # An unquoted here-doc runs the $(base64 ...) it holds; everything else in it is escaped.
    text = text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
    for token, command in inlined.items():
        text = text.replace(token, command)
    return "-d @- <<IMGEN_JSON_END\n" + text + "\nIMGEN_JSON_END"  # the JSON is one line: the end marker cannot occur in it


def cost_of(plan: Plan, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cost {"usd", "basis", "note"} from the cached catalog (`imgen models --remote` fills
    it); never fetched here, so --dry-run stays free of network traffic and one-shot runs stay fast."""
    if plan.offline:
        return {"usd": 0.0, "basis": "estimated", "note": "the offline placeholder is free"}
    # Each module only on the path that needs it: most runs end at "no cached price list".
    price = plan.spec.price_per_image if plan.spec is not None else None
    if price is not None:
        from decimal import Decimal

        usd = float(Decimal(str(price)) * plan.request.n)
        return {"usd": usd, "basis": "estimated", "note": f"${price:g} per image x {plan.request.n} (your model record)"}
    from ..models import catalogpath

    cached = None
    if catalogpath.is_cached(plan.base_url):
        from ..models import catalog

        cached = catalog.read_cache(plan.base_url)
    if cached is None:
        return {"usd": None, "basis": "unknown", "note": "no cached price list for this base URL; run: imgen models --remote"}
    from ..models import cost

    request = plan.request
    return cost.estimate(request.model, request.n, cached, usage, fields=request.fields, prompt=request.prompt).to_dict()
