"""The Slack Web API client every part of the bot uses.

``SLACK_API_URL`` sets its base URL (an enterprise proxy, or a test stand-in). It
honours 429 ``Retry-After`` (sleeping as long as Slack says, up to 10 times), retries
500/503 and connection errors a few times, and never logs its token.
"""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

SLACK_API_DEFAULT = "https://slack.com/api/"
RATE_LIMIT_RETRIES = 10


def web_client(settings: Settings, token: str | None = None) -> AsyncWebClient:
    base = (settings.slack_api_url or SLACK_API_DEFAULT.rstrip("/")) + "/"
    tok = token or (settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None)
    client = AsyncWebClient(token=tok, base_url=base, timeout=int(settings.source_timeout_s * 3))
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=3),
    ]
    return client
