"""What the HTTP sources (Loki, Tempo) share: a base URL, the tenant sent as
``X-Scope-OrgID``, a timeout, and an httpx client they close only if they made it."""

from __future__ import annotations

from typing import Self

import httpx


class HttpSource:
    name = "http"

    def __init__(self, base_url: str, tenant: str | None, timeout_s: float, client: httpx.AsyncClient | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant or None
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)

    @property
    def label(self) -> str:
        return f"{self.name} {self.base_url}"

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.tenant:
            h["X-Scope-OrgID"] = self.tenant
        return h

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
