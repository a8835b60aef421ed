"""The tracker a configuration names."""

from __future__ import annotations

import httpx

from bot.tracker.base import Tracker
from bot.tracker.github import GitHubTracker
from bot.tracker.jira import JiraTracker
from bot.tracker.settings import TrackerConfig, TrackerSettings, tracker_config


def build_tracker(config: TrackerConfig, *, client: httpx.AsyncClient | None = None) -> Tracker:
    """A ``GitHubTracker`` or ``JiraTracker``; close it with ``aclose()``."""
    if config.kind == "github":
        return GitHubTracker(config, client=client)
    return JiraTracker(config, client=client)


def tracker_from_settings(settings: TrackerSettings) -> Tracker | None:
    """The configured tracker, None when ``RECON_TRACKER`` is unset; ``ConfigError``
    naming the setting that is missing or wrong."""
    config = tracker_config(settings)
    return build_tracker(config) if config is not None else None
