"""Where the TOML files live, how they are read, and how they are replaced without ever being torn.

Writes go through a temporary file in the same directory, fsync, `os.replace` and an fsync of
the directory, so a crash or a full disk leaves either the old file or the new one, never half of
each. The files are read with `tomllib` and written with `tomli_w`: a round trip keeps every table
and key but not comments or layout, the price of needing no TOML-editing dependency.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import tomllib

APP_NAME = "imgen"
CONFIG_ENV = "IMGEN_CONFIG"
CREDENTIALS_ENV = "IMGEN_CREDENTIALS"
CONFIG_NAME = "config.toml"
CREDENTIALS_NAME = "credentials.toml"

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user config directory (`$XDG_CONFIG_HOME/imgen` on Linux)."""
    if environ is None or environ is os.environ or sys.platform in ("win32", "darwin"):
        import platformdirs

        return platformdirs.user_config_path(APP_NAME)
    # platformdirs only reads os.environ; an explicit mapping must be honoured the same way.
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".config"
    return base / APP_NAME


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`IMGEN_CONFIG` if set, else `config.toml` in the config directory; it need not exist."""
    environ = os.environ if environ is None else environ
    override = environ.get(CONFIG_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return config_dir(environ) / CONFIG_NAME


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """`IMGEN_CREDENTIALS` if set, else `credentials.toml` beside the config file."""
    environ = os.environ if environ is None else environ
    override = environ.get(CREDENTIALS_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return config_path(environ).parent / CREDENTIALS_NAME


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, `{}` when it does not exist. Any other failure is a ConfigError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    import tomllib  # ~3 ms: paid only when there is a file to parse, not by a run without one

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid UTF-8 (byte {exc.start})",
            hint="TOML files must be UTF-8 text; fix or remove the file",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise parse_error(path, exc) from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply to read", hint="flatten the nesting; fix or remove the file") from None


def profile_tables(path: Path, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The file's [profiles.NAME] tables, each checked to be a table."""
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles must be a table: [profiles.NAME]")
    for name, section in profiles.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: profiles.{name} must be a table: [profiles.{name}]")
    return profiles


def parse_error(path: Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """Name the file, line and column: tomllib knows them but only inside its message."""
    text = str(exc)
    match = _POSITION.search(text)
    if match:
        line, column = match.groups()
        what = text[: match.start()]
        message = f"invalid TOML in {path} at line {line}, column {column}: {what}"
    else:
        message = f"invalid TOML in {path}: {text}"
    return ConfigError(message, hint="fix the file by hand; imgen will not rewrite a file it cannot parse")


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) if missing; the directory itself is made 0700."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; chmod states the intent exactly.
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror or exc}") from None


def write_toml(path: Path, data: Mapping[str, Any], *, private: bool = False) -> Path:
    """Atomically replace `path` with `data` as TOML; returns the path actually written.

    `private` files are always 0600. Others keep the mode of the file they replace (0644 when
    new). A symlinked file is written through to its target so dotfile managers keep working.
    """
    import tomli_w

    text = tomli_w.dumps(dict(data))
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    ensure_private_dir(target.parent)
    if private:
        mode = 0o600
    else:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None

    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk; not possible on Windows.
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def loose_permissions(path: Path) -> int | None:
    """The file's mode when group or others have any access to it, else None."""
    if os.name == "nt":
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None
