"""The one exception tree of recon.

::

    ReconError                      anything recon raises on purpose
    ├── BadInput                    the person asked for something malformed (exit 2)
    ├── NotAuthorized               a caller without the right token, signature or role
    ├── ConfigError                 a setting is missing or wrong; names the setting
    ├── StoreError                  the bot's own PostgreSQL store
    │   └── EmbeddedPostgresError   the embedded server could not be started
    └── SourceFailure               an upstream evidence source failed
        ├── SourceUnavailable       not configured, unreachable, timed out
        ├── SourceError             it answered, but with an error or garbage
        └── TrackerFailure          the ticket tracker (GitHub, Jira) failed
            ├── TrackerRetryable    down, timed out, 5xx, rate-limited: try again after retry_after_s
            └── TrackerRejected     401/403/404/422…: retrying the same request cannot succeed

Upstream failures are distinct from bad input and from refusals: a diagnosis turns a
``SourceFailure`` into ``sources[name] = "unavailable" | "error"`` and ``complete:
false``; it never lets one crash the run. A ``TrackerFailure`` never carries a token:
its message is the tracker's name, the status and the tracker's own (capped) reason.
"""

from __future__ import annotations


class ReconError(Exception):
    """Base of every error recon raises on purpose."""


class BadInput(ReconError):
    """Malformed input from a person or a caller (a bad correlation id, a bad duration)."""


class NotAuthorized(ReconError):
    """A request without valid credentials (token, signature) or by someone not allowed."""


class ConfigError(ReconError):
    """A setting is missing or invalid. The message names the setting."""


class StoreError(ReconError):
    """The bot's own store failed."""


class EmbeddedPostgresError(StoreError):
    """The embedded PostgreSQL could not be initialised or started."""


class SourceFailure(ReconError):
    """An evidence source (Loki, Tempo, billing DB, offline folder) failed."""

    status = "error"

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class SourceUnavailable(SourceFailure):
    """The source is not configured, cannot be reached, or timed out."""

    status = "unavailable"


class SourceError(SourceFailure):
    """The source answered with an error status or a body that cannot be parsed."""

    status = "error"


class TrackerFailure(SourceFailure):
    """The follow-up ticket tracker (GitHub, Jira) failed."""

    status = "error"


class TrackerRetryable(TrackerFailure):
    """Down, timed out, a 5xx, or rate-limited. ``retry_after_s`` is the delay the tracker
    asked for (``Retry-After``, GitHub's ``x-ratelimit-reset``), or None: back off."""

    status = "unavailable"

    def __init__(self, source: str, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(source, reason)
        self.retry_after_s = retry_after_s


class TrackerRejected(TrackerFailure):
    """The tracker refused the request (401, 403, 404, 410, 422, …): the same request
    will fail again until someone changes the settings, the token or the project."""

    def __init__(self, source: str, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(source, reason)
        self.http_status = http_status
