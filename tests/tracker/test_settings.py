"""Tracker settings: names from interfaces.md, checked, errors name the setting and never
its value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.errors import ConfigError
from bot.settings import Settings
from bot.tracker.build import tracker_from_settings
from bot.tracker.github import GitHubTracker
from bot.tracker.jira import JiraTracker
from bot.tracker.settings import tracker_config

TOKEN = "ghp_very_secret_value"


def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object, **env: str) -> Settings:
    monkeypatch.chdir(str(tmp_path))  # no .env
    for k in ("RECON_TRACKER", "GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL", "JIRA_URL", "JIRA_USER",
              "JIRA_API_TOKEN", "JIRA_PROJECT", "RECON_TRACKER_LAYERS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Settings()


def test_unset_means_no_tracker(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    s = settings(monkeypatch, tmp_path)
    assert tracker_config(s) is None and s.github_api_url == "https://api.github.com"


async def test_github_and_jira_configurations(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    gh = settings(monkeypatch, tmp_path, RECON_TRACKER="github", GITHUB_TOKEN=TOKEN, GITHUB_REPOSITORY="acme/billing",
                  GITHUB_API_URL="https://ghe.example.com/api/v3/", RECON_TRACKER_LAYERS="ui_export=acme/web")
    config = tracker_config(gh)
    assert config is not None and config.base_url == "https://ghe.example.com/api/v3"
    assert config.target_for("ui_export") == "acme/web" and config.target_for("billing_worker") == "acme/billing"
    tracker = tracker_from_settings(gh)
    assert isinstance(tracker, GitHubTracker)
    await tracker.aclose()
    jira = settings(monkeypatch, tmp_path, RECON_TRACKER="jira", JIRA_URL="https://acme.atlassian.net",
                    JIRA_USER="bot@acme.com", JIRA_API_TOKEN=TOKEN, JIRA_PROJECT="OPS",
                    RECON_TRACKER_LAYERS="metering_emitter=METER, ui_export=UI")
    tracker = tracker_from_settings(jira)
    assert isinstance(tracker, JiraTracker) and tracker.target_for("ui_export") == "UI"
    await tracker.aclose()


@pytest.mark.parametrize(("env", "named"), [
    ({"RECON_TRACKER": "github", "GITHUB_REPOSITORY": "acme/billing"}, "GITHUB_TOKEN"),
    ({"RECON_TRACKER": "github", "GITHUB_TOKEN": TOKEN}, "GITHUB_REPOSITORY"),
    ({"RECON_TRACKER": "jira", "JIRA_URL": "https://j.example.com", "JIRA_USER": "u", "JIRA_PROJECT": "OPS"},
     "JIRA_API_TOKEN"),
    ({"RECON_TRACKER": "jira", "JIRA_API_TOKEN": TOKEN, "JIRA_USER": "u", "JIRA_PROJECT": "OPS"}, "JIRA_URL"),
    ({"RECON_TRACKER": "github", "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/billing",
      "RECON_TRACKER_LAYERS": "ui_export=OPS"}, "RECON_TRACKER_LAYERS"),
])
def test_a_missing_or_wrong_setting_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: object,
                                             env: dict[str, str], named: str) -> None:
    s = settings(monkeypatch, tmp_path, **env)
    with pytest.raises(ConfigError, match=named) as exc:
        tracker_config(s)
    assert TOKEN not in str(exc.value)


@pytest.mark.parametrize(("env", "named"), [
    ({"RECON_TRACKER": "gitlab"}, "RECON_TRACKER"),
    ({"GITHUB_REPOSITORY": "not a repo"}, "GITHUB_REPOSITORY"),
    ({"JIRA_PROJECT": "ops-lower"}, "JIRA_PROJECT"),
    ({"JIRA_URL": f"https://user:{TOKEN}@jira.example.com"}, "JIRA_URL"),
    ({"RECON_TRACKER_LAYERS": "frontend=acme/web"}, "RECON_TRACKER_LAYERS"),
    ({"RECON_TRACKER_LAYERS": "ui_export=a/b,ui_export=c/d"}, "RECON_TRACKER_LAYERS"),
])
def test_a_malformed_value_is_refused_when_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object,
                                                env: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(monkeypatch, tmp_path, **env)
    first = exc.value.errors()[0]
    assert named in str(first["loc"]) and TOKEN not in first["msg"]
