"""The Slack Web API client every part of the bot uses.

``SLACK_API_URL`` sets its base URL (an enterprise proxy, or a test stand-in). It
honours 429 ``Retry-After`` (sleeping as long as Slack says, up to 10 times), retries
500/503 and connection errors a few times, and never logs its token.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.settings import Settings

SLACK_API_DEFAULT = "https://slack.com/api/"
RATE_LIMIT_RETRIES = 10


class CountingWebClient(AsyncWebClient):
    """An AsyncWebClient that counts its calls by method (for /metrics)."""

    metrics: Metrics | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> Any:
        if self.metrics is not None:
            self.metrics.slack_calls.labels(api_method).inc()
        return await super().api_call(api_method, **kwargs)


class CountingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """Honours 429 Retry-After (as its parent) and counts the 429s."""

    def __init__(self, metrics: Metrics | None, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.metrics = metrics

    async def _can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        limited = response is not None and response.status_code == 429
        if limited and self.metrics is not None:
            self.metrics.slack_429.labels(str(request.url).rsplit("/", 1)[-1].split("?")[0]).inc()
        return limited


def web_client(settings: Settings, token: str | None = None, metrics: Metrics | None = None) -> AsyncWebClient:
    base = (settings.slack_api_url or SLACK_API_DEFAULT.rstrip("/")) + "/"
    tok = token or (settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None)
    client = CountingWebClient(token=tok, base_url=base, timeout=int(settings.source_timeout_s * 3))
    client.metrics = metrics
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
        CountingRateLimitHandler(metrics, RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=3),
    ]
    return client
