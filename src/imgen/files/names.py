"""Safe, unique output file names from a name template.

A rendered name is a single file name, never a path: it cannot climb out of the output
directory, name a device on Windows, hide itself behind a leading dot, or overflow the
file-system limit once the saver adds its own suffixes. `unique_path` then picks a name that
neither an existing file nor an earlier image of the same run holds; the saver still creates the
file exclusively, so a file that appears in between is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Collection
from pathlib import Path

DEFAULT_TEMPLATE = "{date}-{slug}-{index}.{ext}"
EDIT_TEMPLATE = "{stem}-edit-{index}.{ext}"

# Field -> what it renders; the order is the order error messages and help list them in.
FIELDS: dict[str, str] = {
    "date": "local date, YYYY-MM-DD",
    "time": "local time, HHMMSS",
    "slug": "the prompt as lower-case ASCII words joined by '-'",
    "index": "the image's number in the run, from 1; {index:03} pads it with zeros",
    "model": "the model id, reduced to letters, digits, '.', '_' and '-'",
    "ext": "the extension of the image's real format (png, jpg, webp, gif)",
    "hash": "the first 8 hex digits of the prompt's SHA-256",
    "seed": "the seed sent to the API, or 'noseed'",
    "stem": "imgen edit: the first input's file name without its extension ('stdin' for -); else the slug",
}

NAME_MAX_BYTES = 255  # NAME_MAX of ext4, btrfs, xfs and APFS, counted in UTF-8 bytes
# Room kept free by `render` for the `-N` that `unique_path` adds and the saver's
# `.partial-K` and temporary-file suffixes.
SUFFIX_RESERVE_BYTES = 40
MAX_RENDERED_BYTES = NAME_MAX_BYTES - SUFFIX_RESERVE_BYTES
# What `unique_path` still leaves free for the saver, whatever name it was handed.
SAVER_RESERVE_BYTES = 24
MAX_UNIQUE_BYTES = NAME_MAX_BYTES - SAVER_RESERVE_BYTES

# Only a zero-padded width makes sense in a file name: a space-padded or signed index does not.
_INDEX_SPEC = re.compile(r"(0[1-9])?d?")

# Separators, and the characters Windows refuses, in a template: the output directory is
# chosen with -o, and a name valid here should stay valid on the user's other machines.
_TEMPLATE_FORBIDDEN = set('/\\<>:"|?*')
# Control and format characters, line and paragraph separators, lone surrogates: they break
# the one-path-per-line stdout contract, spoof what a name looks like, or cannot be encoded.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789¹²³"}
)

# Letters NFKD leaves whole but that have an obvious ASCII spelling; apostrophes vanish so
# "don't" becomes "dont", not "don-t".
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
        "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th",
        "ı": "i", "'": "", "\u2019": "", "\u02bc": "",
    }
)  # fmt: skip

# Words a cut slug should not end on: "...-calm-water-at" reads as a fragment, "...-calm-water"
# does not. Only trimmed where the prompt was cut, and never down to nothing.
_DANGLING = frozenset(
    "a an the and or but nor at on in of to for with by from into onto as over under near than".split()
)

_MAX_EXT_BYTES = 16
_FALLBACK_STEM = "image"


class TemplateError(ValueError):
    """A name template imgen refuses; `field` is the offending field text, when there is one."""

    def __init__(self, template: str, problem: str, field: str | None = None) -> None:
        self.template = template
        self.problem = problem
        self.field = field
        allowed = " ".join(f"{{{name}}}" for name in FIELDS)
        super().__init__(
            f"invalid name template {template!r}: {problem}; "
            f"allowed fields: {allowed} ({{{{ and }}}} write literal braces)"
        )


def _bad_char(ch: str) -> bool:
    return ch in _TEMPLATE_FORBIDDEN or unicodedata.category(ch) in _BAD_CATEGORIES


def _parse(template: str) -> list[tuple[str, str | None, str]]:
    """(literal, field, spec) triples of a template, or TemplateError."""
    if not template.strip():
        raise TemplateError(template, "it is empty")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise TemplateError(template, "a brace is not closed or not opened") from None
    parts: list[tuple[str, str | None, str]] = []
    for literal, field, spec, conversion in parsed:
        for ch in literal:
            if ch in "/\\":
                problem = f"{ch!r} is not allowed: the template names a file, not a path (the directory is -o)"
                raise TemplateError(template, problem)
            if _bad_char(ch):
                raise TemplateError(template, f"{ch!r} (U+{ord(ch):04X}) is not allowed in a file name")
        if field is None:
            parts.append((literal, None, ""))
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if field not in FIELDS:
            if field == "" or field.isdigit():
                problem = f"{shown} is positional: use a field name"
            elif any(c in field for c in ".[]"):
                problem = f"{shown}: attribute and index access are not allowed"
            else:
                problem = f"{shown} is not a field"
            raise TemplateError(template, problem, shown)
        if conversion:
            raise TemplateError(template, f"{shown}: conversions (!r, !s, !a) are not allowed", shown)
        if spec and not (field == "index" and _INDEX_SPEC.fullmatch(spec)):
            problem = f"{shown}: only a zero-padded width is allowed, and only for index, e.g. {{index:03}}"
            raise TemplateError(template, problem, shown)
        parts.append((literal, field, spec))
    return parts


def validate_template(template: str) -> None:
    """Raise TemplateError unless `render` would accept `template`: check it before any request."""
    _parse(template)


def template_fields(template: str) -> set[str]:
    """The fields a valid template uses (e.g. to warn when it has no {ext} or, with n > 1, no {index})."""
    return {field for _, field, _ in _parse(template) if field is not None}


def _digest(prompt: str) -> str:
    # surrogatepass: a prompt from argv can carry surrogate escapes of undecodable bytes.
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


def slugify(prompt: str, max_len: int = 40) -> str:
    """`prompt` as lower-case ASCII words joined by '-', at most `max_len` characters.

    Cut at a word boundary, dropping articles and prepositions left dangling at the cut; a single
    longer word is cut hard. A prompt with nothing ASCII-spellable (CJK, emoji, punctuation)
    becomes `image-<6 hex of its SHA-256>`, so two such prompts still get different names.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    ascii_text = _ascii(unicodedata.normalize("NFKD", prompt.translate(_TRANSLITERATE))).lower()
    kept: list[str] = []
    length = -1
    for word in re.findall(r"[a-z0-9]+", ascii_text):
        if length + 1 + len(word) > max_len:
            if not kept:
                kept.append(word[:max_len])
            while len(kept) > 1 and kept[-1] in _DANGLING:
                kept.pop()
            break
        kept.append(word)
        length += 1 + len(word)
    slug = "-".join(kept)
    if not slug:
        slug = f"{_FALLBACK_STEM}-{_digest(prompt)[:6]}"[:max_len].rstrip("-")
    return slug


def _ascii(text: str) -> str:
    """Accented Latin is its letters once decomposed; the letters of every other script
    (Cyrillic, Greek, Han, kana, Hangul...) go through anyascii, whose tables cover them all. A Han
    character stands as a word of its own, as Chinese is written without spaces (一只猫: yi-zhi-mao).
    Symbols and emoji are left out, as punctuation is."""
    if text.isascii():
        return text
    try:
        from anyascii import anyascii
    except ImportError:  # a stripped install: the hash fallback names what cannot be spelt
        return text.encode("ascii", "ignore").decode("ascii")
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif unicodedata.category(ch).startswith("L"):
            out.append(f" {anyascii(ch)} " if unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH") else anyascii(ch))
        elif not unicodedata.category(ch).startswith("M"):  # accents, decomposed off their letters, just go
            out.append(" ")
    return "".join(out)


def _safe_stem(stem: str) -> str:
    # A stem is one name already (no separators), but it may hold what no name should.
    return "".join("_" if _bad_char(ch) else ch for ch in stem)[:80].strip() or _FALLBACK_STEM


def _safe_model(model: str) -> str:
    text = unicodedata.normalize("NFKD", model).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:64].strip("._-")
    return text or "model"


def _split_ext(name: str) -> tuple[str, str]:
    """(stem, '.ext') when the name ends in a short extension after a non-empty stem, else (name, '')."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and ext and len(ext.encode("utf-8")) <= _MAX_EXT_BYTES:
        return stem, "." + ext
    return name, ""


def _fit(stem: str, tail: str, limit: int) -> str:
    """stem + tail in at most `limit` UTF-8 bytes, shortening only the stem."""
    room = limit - len(tail.encode("utf-8"))
    raw = stem.encode("utf-8")
    if len(raw) > room:
        stem = raw[: max(room, 0)].decode("utf-8", "ignore").rstrip(" .-")
        if not stem:
            stem = _FALLBACK_STEM
    return stem + tail


def _is_reserved(name: str) -> bool:
    # Windows reserves the device names with any extension, and ignores trailing spaces.
    return name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED


def safe_name(name: str, limit: int = MAX_RENDERED_BYTES) -> str:
    """`name` made into one portable file name of at most `limit` UTF-8 bytes.

    Unsafe characters become '_'; trailing dots and spaces go (Windows drops them silently, so
    two names would collide); a leading '.' or '-' (hidden file, option lookalike) and a Windows
    device name get a '_' prefix; an over-long name loses the end of its stem, not its extension.
    """
    name = "".join("_" if _bad_char(ch) else ch for ch in name).strip().rstrip(". ")
    if not name:
        name = _FALLBACK_STEM
    if name.startswith((".", "-")) or _is_reserved(name):
        name = "_" + name
    stem, ext = _split_ext(name)
    return _fit(stem, ext, limit)


def render(
    template: str,
    *,
    prompt: str,
    index: int,
    ext: str,
    model: str,
    date: dt.date | None = None,
    now: dt.datetime | None = None,
    seed: int | None = None,
    stem: str | None = None,
) -> str:
    """The file name (not a path) for image number `index` of a run, from `template`.

    `index` is the number the name shows, counting from 1 (ImageResult.index + 1). Pass the same
    `now` for every image of a run so they share {date} and {time}; `date` overrides the date
    alone. Raises TemplateError (a ValueError) for a template `validate_template` would refuse.
    """
    parts = _parse(template)
    if index < 1:
        raise ValueError(f"index counts from 1, got {index}")
    ext = ext.lstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9]{1,16}", ext):
        raise ValueError(f"not a file extension: {ext!r}")
    if now is None:
        now = dt.datetime.now()
    if date is None:
        date = now.date()
    values = {
        "date": lambda: date.strftime("%Y-%m-%d"),
        "time": lambda: now.strftime("%H%M%S"),
        "slug": lambda: slugify(prompt),
        "model": lambda: _safe_model(model),
        "ext": lambda: ext,
        "hash": lambda: _digest(prompt)[:8],
        "seed": lambda: "noseed" if seed is None else str(seed),
        "stem": lambda: _safe_stem(stem) if stem else slugify(prompt),
    }
    out: list[str] = []
    for literal, field, spec in parts:
        out.append(literal)
        if field == "index":
            out.append(format(index, spec))
        elif field is not None:
            out.append(values[field]())
    return safe_name("".join(out))


def _check_plain_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"not a plain file name: {name!r}")


# A name that already ends in a small counter (the template's -{index}) goes on counting; longer
# numbers (a year, a timestamp) are part of the name and get a -2 of their own.
_COUNTED = re.compile(r"(.*-)([1-9][0-9]{0,2})")


def unique_path(
    directory: Path,
    name: str,
    *,
    taken: Collection[str] = frozenset(),
    overwrite: bool = False,
) -> Path:
    """`directory / name`, or `name-2`, `name-3`, ... before the extension (`x-1` goes on as `x-2`,
    `x-3`): the first candidate
    that no entry on disk (a dangling symlink counts) and no name in `taken` holds.

    `taken` holds names already handed to earlier images of the run and not yet written; it is
    compared case-insensitively because macOS and Windows file systems are. `overwrite` skips the
    disk check only: two images of one run never share a name. This only picks the candidate;
    creating it exclusively is the saver's job. Candidates stay within MAX_UNIQUE_BYTES.
    """
    _check_plain_name(name)
    directory = Path(directory)
    folded = {t.casefold() for t in taken}
    stem, ext = _split_ext(name)
    counted = _COUNTED.fullmatch(stem)
    for k in range(1, 1_000_000):
        if k == 1:
            candidate = _fit(stem, ext, MAX_UNIQUE_BYTES)
        elif counted:  # a-cat-1 is taken: a-cat-2, a-cat-3, names that sort, not a-cat-1-2
            candidate = _fit(counted[1], f"{int(counted[2]) + k - 1}{ext}", MAX_UNIQUE_BYTES)
        else:
            candidate = _fit(stem, f"-{k}{ext}", MAX_UNIQUE_BYTES)
        if candidate.casefold() in folded:
            continue
        path = directory / candidate
        if overwrite or not os.path.lexists(path):
            return path
    raise FileExistsError(f"no free name like {name!r} in {directory}")


class NameReserver:
    """Hands out the names of one run: each `reserve` returns a path no earlier call returned."""

    def __init__(self, directory: Path, *, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        self.overwrite = overwrite
        self.taken: set[str] = set()

    def reserve(self, name: str) -> Path:
        path = unique_path(self.directory, name, taken=self.taken, overwrite=self.overwrite)
        self.taken.add(path.name)
        return path
