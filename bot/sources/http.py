"""What the HTTP sources (Loki, Tempo) share: a base URL, the tenant sent as
``X-Scope-OrgID``, credentials, a timeout, and an httpx client they close only if they
made it.

Credentials are ``user``/``password`` (HTTP basic) or ``bearer_token``; without them,
the base URL's userinfo (``https://user:token@host``, how hosted Loki is often given)
is sent as basic credentials. They travel in the ``Authorization`` header and nowhere
else: the URL a source shows (``base_url``, ``label``, an evidence record's ``via``,
error messages) is ``redact_url`` of it, and text from the transport or the server
(an exception, an error body) has every secret replaced before it goes into an error.
"""

from __future__ import annotations

import base64
import re
from typing import Self
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

import httpx

__all__ = ["REDACTED", "HttpSource", "redact_url", "sensitive_param", "split_userinfo"]

REDACTED = "***"
# query parameters whose value is a credential (compared lower-cased), and prefixes of them
SENSITIVE_PARAMS = frozenset({
    "token", "access_token", "id_token", "refresh_token", "auth", "auth_token", "authorization", "api_key",
    "apikey", "api-key", "key", "password", "passwd", "pwd", "secret", "client_secret", "sig", "signature",
    "credential", "credentials", "session", "jwt",
})
SENSITIVE_PREFIXES = ("x-amz-", "x-goog-")
_USERINFO_RE = re.compile(r"(//)[^/?#]*@")


def sensitive_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    n = unquote_plus(name).strip().lower()
    return n in SENSITIVE_PARAMS or n.startswith(SENSITIVE_PREFIXES)


def _redact_pairs(text: str) -> str:
    out = []
    for pair in text.split("&"):
        name, eq, _ = pair.partition("=")
        out.append(f"{name}={REDACTED}" if eq and sensitive_param(name) else pair)
    return "&".join(out)


def redact_url(url: str) -> str:
    """``url`` fit to be shown, logged or stored: its userinfo and the values of its
    credential query parameters (``token``, ``api_key``, ``sig``, ``X-Amz-*``…) are
    ``***``. Text that does not parse as a URL loses any userinfo and its whole query."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError for a port that is not a number
    except ValueError:
        head, q, _ = _USERINFO_RE.sub(rf"\1{REDACTED}@", url).partition("?")
        return head + (f"?{REDACTED}" if q else "")
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    fragment = _redact_pairs(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_pairs(parts.query), fragment))


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its userinfo, and the user and password it carried (decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: the request says so (and the URL shown is redacted)
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), (unquote(password) if colon else None)


def _query_secrets(url: str) -> list[str]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return [url]
    found = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and sensitive_param(name):
            found += [value, unquote_plus(value)]
    return found


class HttpSource:
    name = "http"

    def __init__(self, base_url: str, tenant: str | None, timeout_s: float, client: httpx.AsyncClient | None,
                 *, user: str | None = None, password: str | None = None, bearer_token: str | None = None) -> None:
        if bearer_token and (user or password):
            raise ValueError("give a bearer token or a user and password, not both")
        clean, url_user, url_password = split_userinfo(base_url.strip().rstrip("/"))
        self._base = clean
        self.base_url = redact_url(clean)  # what is shown: never a credential
        self.tenant = tenant or None
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)
        secrets = _query_secrets(clean)
        if not bearer_token and not user and not password and (url_user or url_password):
            user, password = url_user, url_password
            secrets += [url_user or "", *_raw_userinfo(base_url)]  # a token given as the user is a secret
        self._authorization: str | None = None
        if bearer_token:
            self._authorization = f"Bearer {bearer_token}"
        elif user or password:
            basic = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode("ascii")
            self._authorization = f"Basic {basic}"
        secrets += [password or "", bearer_token or "", self._authorization or ""]
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @property
    def label(self) -> str:
        return f"{self.name} {self.base_url}"

    def url(self, path: str) -> str:
        """The URL to request for ``path`` (which may have a query): the base URL's path
        and query (credentials there, if any, kept) joined with it."""
        path, _, query = path.partition("?")
        try:
            parts = urlsplit(self._base)
        except ValueError:  # not a URL: httpx says so when it is requested
            return self._base + path + (f"?{query}" if query else "")
        query = "&".join(q for q in (parts.query, query) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))

    def shown_url(self, path: str) -> str:
        """``url(path)`` as it may be shown."""
        return redact_url(self.url(path))

    def scrub(self, text: str) -> str:
        """``text`` (an exception's, a server's) with every credential of this source replaced."""
        for s in self._secrets:
            text = text.replace(s, REDACTED)
        return text

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.tenant:
            h["X-Scope-OrgID"] = self.tenant
        if self._authorization:
            h["Authorization"] = self._authorization
        return h

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _raw_userinfo(url: str) -> list[str]:
    """The userinfo of ``url`` as written (percent-encoded), whole and its password."""
    try:
        netloc = urlsplit(url.strip()).netloc
    except ValueError:
        return []
    if "@" not in netloc:
        return []
    userinfo = netloc.rpartition("@")[0]
    return [userinfo, userinfo.partition(":")[2]]
