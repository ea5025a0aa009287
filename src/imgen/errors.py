"""Exit codes and the one exception hierarchy that maps onto them.

Every failure imgen reports is an ImgenError: a message (what happened), a hint (what to do
next) and, when the API said something, the API's own code. The CLI renders it in one place.
"""

from __future__ import annotations

from enum import IntEnum

from .redact import scrub


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    REJECTED = 5
    RATE_LIMIT = 6
    NETWORK = 7
    SERVER = 8
    BAD_RESPONSE = 9
    PARTIAL = 10
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success: every image was saved (or printed)",
    ExitCode.INTERNAL: "internal error: a bug in imgen (run with --debug and report it)",
    ExitCode.USAGE: "usage error: a flag, value or combination is not allowed; nothing was sent",
    ExitCode.CONFIG: "configuration error: the config or credentials file is malformed or unwritable",
    ExitCode.AUTH: "authentication failed: the API key is missing or rejected (401/403)",
    ExitCode.REJECTED: "request rejected by the API (400/404/413/422, moderation)",
    ExitCode.RATE_LIMIT: "rate limited or out of quota (429) after the retries",
    ExitCode.NETWORK: "network error: could not connect, DNS failure, timeout",
    ExitCode.SERVER: "server error (5xx) after the retries",
    ExitCode.BAD_RESPONSE: "bad response or download: invalid JSON, not an image, cut download, write failure",
    ExitCode.PARTIAL: "partial success: some images were saved, others failed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); nothing partial was left behind",
}


class ImgenError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL
    retryable: bool = False  # whether the same request, sent again, can succeed (faults.classify sets it)
    retry_after: float | None = None  # how long the API asked a retry to wait, when its body says

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        # Server text (an error echoing "Incorrect API key provided: sk-...") goes into messages:
        # masked here, it is masked on stderr, in --json, the ledger, manifests and the journal alike.
        message, hint = scrub(message), scrub(hint) if hint is not None else None
        request_id = scrub(request_id) if request_id is not None else None
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.status = status
        self.request_id = request_id

    def to_dict(self) -> dict:
        out = {"error": type(self).__name__, "exit_code": int(self.exit_code), "message": self.message}
        for key in ("hint", "code", "status", "request_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class UsageError(ImgenError):
    exit_code = ExitCode.USAGE

    @classmethod
    def of(cls, problems: list[str], hint: str) -> UsageError:
        """Every problem found in one error, so a user fixes them all in one go."""
        text = problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        return cls(text, hint)


class ConfigError(ImgenError):
    exit_code = ExitCode.CONFIG


class AuthError(ImgenError):
    exit_code = ExitCode.AUTH


class RequestRejected(ImgenError):
    exit_code = ExitCode.REJECTED


class RateLimited(ImgenError):
    exit_code = ExitCode.RATE_LIMIT


class NetworkError(ImgenError):
    exit_code = ExitCode.NETWORK


class ServerError(ImgenError):
    exit_code = ExitCode.SERVER


class BadResponse(ImgenError):
    exit_code = ExitCode.BAD_RESPONSE


class DownloadError(BadResponse):
    """A download or save failed; nothing was left under the final name."""


class Interrupted(ImgenError):
    """Ctrl-C reached a download running on a worker thread: it stopped and left nothing behind."""

    exit_code = ExitCode.INTERRUPTED
