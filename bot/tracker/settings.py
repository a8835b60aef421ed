"""The tracker's settings (names: interfaces.md) and the checked configuration built
from them.

``TrackerSettings`` holds the fields; ``bot.settings.Settings`` inherits them, so they
are read once with every other setting. Each field checks its own syntax (a bad value is
a pydantic error naming the variable). ``tracker_config(settings)`` then checks what
must go together (``RECON_TRACKER=github`` needs ``GITHUB_TOKEN`` and
``GITHUB_REPOSITORY``, …) and raises ``ConfigError`` naming the missing or bad setting,
never its value. ``None`` means no tracker: follow-ups stay in the thread and report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.diagnosis.model import OwningLayer
from bot.errors import ConfigError

TrackerKind = Literal["github", "jira"]
LAYERS: tuple[str, ...] = get_args(OwningLayer)
REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
PROJECT_RE = re.compile(r"[A-Z][A-Z0-9_]{0,49}")


class TrackerSettings(BaseSettings):
    """Where follow-up tickets go. Inherited by ``bot.settings.Settings``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True)

    tracker: TrackerKind | None = Field(default=None, alias="RECON_TRACKER")
    github_api_url: str | None = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    github_token: SecretStr | None = Field(default=None, alias="GITHUB_TOKEN")
    github_repository: str | None = Field(default=None, alias="GITHUB_REPOSITORY")
    jira_url: str | None = Field(default=None, alias="JIRA_URL")
    jira_user: str | None = Field(default=None, alias="JIRA_USER")
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    jira_project: str | None = Field(default=None, alias="JIRA_PROJECT")
    tracker_layers: str = Field(default="", alias="RECON_TRACKER_LAYERS")
    tracker_timeout_s: float = Field(default=10.0, gt=0, le=120, alias="RECON_TRACKER_TIMEOUT")

    @field_validator("github_api_url", "jira_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must be a plain base URL (no credentials, query or fragment)")
        return v.strip().rstrip("/")

    @field_validator("github_repository")
    @classmethod
    def _repository(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not REPOSITORY_RE.fullmatch(v.strip()):
            raise ValueError("must be owner/name")
        return v.strip()

    @field_validator("jira_project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not PROJECT_RE.fullmatch(v.strip()):
            raise ValueError("must be a Jira project key (upper-case letters, digits, _)")
        return v.strip()

    @field_validator("tracker_layers")
    @classmethod
    def _layers(cls, v: str) -> str:
        parse_layers(v)  # raises ValueError naming the bad entry's layer or position
        return v


def parse_layers(text: str) -> dict[str, str]:
    """``metering_emitter=OWNER/REPO,ui_export=KEY`` as ``{layer: target}``. The target's
    shape depends on the tracker and is checked by ``tracker_config``."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        layer, sep, target = entry.partition("=")
        layer, target = layer.strip(), target.strip()
        if not sep or not target:
            raise ValueError(f"entry {n} is not layer=target")
        if layer not in LAYERS:
            raise ValueError(f"entry {n} names no owning layer (one of {', '.join(LAYERS)})")
        if layer in out:
            raise ValueError(f"layer {layer} is given twice")
        out[layer] = target
    return out


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """A checked tracker configuration: which tracker, its credentials, and where each
    owning layer's tickets go."""

    kind: TrackerKind
    base_url: str
    token: SecretStr
    default_target: str  # owner/name (GitHub) or project key (Jira)
    user: str | None = None  # Jira's basic-auth user
    layer_targets: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0

    def target_for(self, layer: str) -> str:
        return self.layer_targets.get(layer, self.default_target)


def _require(value: object | None, name: str, kind: str) -> None:
    if value is None or (isinstance(value, SecretStr) and not value.get_secret_value().strip()):
        raise ConfigError(f"{name} is required when RECON_TRACKER={kind}")


def tracker_config(settings: TrackerSettings) -> TrackerConfig | None:
    """The checked configuration, or None when ``RECON_TRACKER`` is unset."""
    kind = settings.tracker
    if kind is None:
        return None
    try:
        layers = parse_layers(settings.tracker_layers)
    except ValueError as exc:
        raise ConfigError(f"RECON_TRACKER_LAYERS: {exc}") from None
    if kind == "github":
        _require(settings.github_api_url, "GITHUB_API_URL", kind)
        _require(settings.github_token, "GITHUB_TOKEN", kind)
        _require(settings.github_repository, "GITHUB_REPOSITORY", kind)
        shape, what = REPOSITORY_RE, "owner/name"
        base, token, target, user = settings.github_api_url, settings.github_token, settings.github_repository, None
    else:
        _require(settings.jira_url, "JIRA_URL", kind)
        _require(settings.jira_user, "JIRA_USER", kind)
        _require(settings.jira_api_token, "JIRA_API_TOKEN", kind)
        _require(settings.jira_project, "JIRA_PROJECT", kind)
        shape, what = PROJECT_RE, "a Jira project key"
        base, token, target = settings.jira_url, settings.jira_api_token, settings.jira_project
        user = settings.jira_user
    for layer, layer_target in layers.items():
        if not shape.fullmatch(layer_target):
            raise ConfigError(f"RECON_TRACKER_LAYERS: the target of {layer} must be {what} for RECON_TRACKER={kind}")
    assert base is not None and token is not None and target is not None  # checked by _require
    return TrackerConfig(kind=kind, base_url=base, token=token, default_target=target, user=user,
                         layer_targets=layers, timeout_s=settings.tracker_timeout_s)
