"""The pre-flight check: a request against its model's record, every problem at once, before
anything is sent; and command-line strings turned into the types the table's fields take.

`check()` is pure (no I/O), so it can refuse a bad command line before a key is even looked up,
and it reports every problem at once: a user who fixes one flag should not have to pay a round
trip to discover the next.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..request import GenerateRequest, flag_for
from . import capabilities
from .capabilities import EditSpec, ModelSpec, close_ids, lookup
from .rules import _show_bool

# --------------------------------------------------------------------------- CLI values

FIELD_KINDS: dict[str, str] = {name: rule.kind for s in capabilities.all_specs() for name, rule in s.fields.items()}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(field_name: str, raw: str) -> Any:
    """Convert one command-line string to the type the API field takes. A list field gives a
    one-item list (the CLI concatenates repeats); max_images gives the object the API wants."""
    kind = FIELD_KINDS.get(field_name, "str")
    flag = flag_for(field_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "max_images":
            return {"max_images": int(raw)}
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        what = "a number" if kind == "float" else "a whole number"
        raise UsageError(f"{flag} {shlex.quote(raw)}: must be {what}") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise UsageError(f"{flag} {shlex.quote(raw)}: must be true or false")
    if kind == "list":
        return [raw]
    return raw


# --------------------------------------------------------------------------- the check


@dataclass
class CheckResult:
    spec: ModelSpec | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    edit: EditSpec | None = None  # an edit: how this model takes its inputs

    @property
    def ok(self) -> bool:
        return not self.problems

    def error(self) -> UsageError | None:
        """Every problem as one UsageError, or None when there is none."""
        if not self.problems:
            return None
        return UsageError.of(self.problems, "nothing was sent; imgen models show MODEL lists what MODEL accepts")


def _shown(name: str, value: Any) -> str:
    """How a value appears in a message: the flag and the value as typed on a command line."""
    flag = flag_for(name)
    if name == "sequential_image_generation_options" and isinstance(value, Mapping) and "max_images" in value:
        value = value["max_images"]
    if value is True and name in ("stream", "sequential_image_generation"):
        return flag  # a switch: `--stream`, not `--stream true`
    if isinstance(value, bool):
        text = _show_bool(value)
    elif isinstance(value, (list, tuple)):
        return f"{flag} (x{len(value)})"
    elif isinstance(value, str):
        text = shlex.quote(value)
    else:
        text = str(value)
    return f"{flag} {text}"


def _refusal(spec: ModelSpec, model: str, name: str, value: Any) -> str:
    why = spec.refused.get(name)
    if why is None:
        takes = [s for s in capabilities.all_specs() if name in s.fields or (s.edit is not None and name in s.edit.fields)]
        takers = sorted({s.id for s in takes if s.dialect == spec.dialect})
        # A field no model of this API takes (--negative-prompt on dall-e-3): name those that do.
        takers = takers or sorted({s.id for s in takes})
        if takers and len(takers) <= 3:
            why = " and ".join(takers) + (" do" if len(takers) > 1 else " does")
        elif takers:
            why = "models that do: " + ", ".join(takers[:3]) + ", ..."
    tail = f" ({why})" if why else ""
    return f"{_shown(name, value)}: {model} does not accept {name}{tail}; drop {flag_for(name)}"


def _check_prompt(prompt: str, spec: ModelSpec, model: str, out: CheckResult) -> None:
    length = len(prompt)
    if not prompt.strip():
        out.problems.append("PROMPT: empty; describe the image you want")
    elif length > spec.prompt_max:
        out.problems.append(
            f"PROMPT: {length} characters, {model} accepts at most {spec.prompt_max}; "
            f"shorten it by {length - spec.prompt_max} (imgen never cuts a prompt)"
        )
    elif spec.prompt_advice:
        # CJK text carries more per character; the advice for it is 300, not 1000.
        cjk = sum(1 for ch in prompt if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
        advice = 300 if cjk * 2 > length else spec.prompt_advice
        if length > advice:
            out.warnings.append(
                f"PROMPT: {length} characters; {model} works best under {advice} (longer prompts lose detail)"
            )


def _check_dialect(spec: ModelSpec, model: str, dialect: str, out: CheckResult) -> None:
    if spec.dialect == dialect:
        return
    here = sorted({s.id for s in capabilities.all_specs() if s.dialect == dialect})
    instead = f"use --model {' or '.join(here)}" if 0 < len(here) <= 2 else "pick a model listed by imgen models"
    out.problems.append(
        f"--model {shlex.quote(model)}: served over the {spec.dialect} API, but this profile speaks {dialect}; "
        f"{instead}, or a profile whose api is {spec.dialect}"
    )


def _check_unknown(model: str, strict: bool, out: CheckResult) -> None:
    close = close_ids(model, n=1)
    maybe = f"; did you mean {close[0]}?" if close else ""
    if strict:
        out.problems.append(
            f"--model {shlex.quote(model)}: unknown model, and --strict refuses models imgen cannot check; "
            f"drop --strict to pass it through{maybe}"
        )
    else:
        out.warnings.append(f"unknown model '{model}': passing it through unchecked; --strict refuses unknown models{maybe}")


def check(req: GenerateRequest, dialect: str, *, strict: bool = False) -> CheckResult:
    """Compare the request with its model's record; every problem and warning at once, after
    turning --aspect into the size or ratio field the record takes.
    `req.params` (--param) are the user's way around this table, so they are never checked."""
    spec = lookup(req.model, dialect)
    out = CheckResult(spec=spec)
    retired = capabilities.RETIRED.get(req.model)
    if retired is not None:
        when, instead = retired
        out.problems.append(f"--model {req.model}: the provider shut it down on {when}; use --model {instead}")
        return out
    # --aspect becomes the field this model takes (its record decides); req.fields is changed.
    if req.fields.get("aspect") is None:
        req.fields.pop("aspect", None)  # what aspect.apply does with no shape, without loading it
    else:
        from . import aspect

        shaped = aspect.apply(req.fields, spec, req.model, strict=strict)
        out.problems += [shaped.problem] if shaped.problem else []
        out.warnings += [shaped.warning] if shaped.warning else []
    rules = dict(spec.fields) if spec is not None else {}
    if req.edit:
        from . import editing  # what `imgen edit` checks of its inputs: no generation pays for loading it

        edited = editing.check(spec, req.model, dialect, req.inputs, req.mask)
        out.problems += edited.problems
        out.edit = edited.edit
        if edited.edit is None:
            return out
        rules.update(edited.edit.fields)
        if edited.edit.route == "references":
            # The inputs are this model's reference images; local files become data URIs once
            # the whole request has passed (generation/plan.py), so a refused one costs no read.
            req.fields["image"] = [i.url or str(i.path) for i in req.inputs]
    elif spec is not None and spec.edit_only:
        out.problems.append(f"--model {req.model}: only edits images; use imgen edit IMAGE PROMPT --model {req.model}")
        return out
    if spec is None:
        _check_unknown(req.model, strict, out)
        return out
    model = req.model
    _check_dialect(spec, model, dialect, out)
    _check_prompt(req.prompt, spec, model, out)
    for name, value in req.fields.items():
        if value is None or name in ("model", "prompt"):
            continue
        rule = rules.get(name)
        if rule is None:
            out.problems.append(_refusal(spec, model, name, value))
            continue
        kind_fault = rule.type_fault(value)
        if kind_fault:
            # repr: a profile's n = "4" must not read like the number it failed to be.
            out.problems.append(f"{flag_for(name)} {value!r}: {kind_fault}")
            continue
        fault = rule.fault(value)
        if fault:
            flag = flag_for(name)
            out.problems.append(
                f"{_shown(name, value)}: {model} {rule.reason or fault}; {rule.forward or rule.fix(value, flag)}"
            )
    for combo in spec.combos:
        for level, message in combo.test(req.fields, model):
            (out.problems if level == "problem" else out.warnings).append(message)
    return out
