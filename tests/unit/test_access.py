"""Who may ask recon what, where (bot.slack.access), and which bots may post alerts
(bot.alerts.slack_posts): the policies, pure."""

from __future__ import annotations

import pytest

from bot.alerts.slack_posts import bot_ids, from_alert_bot
from bot.slack.access import CHANNEL_REFUSED, USER_REFUSED, channel_ids, open_warnings, refusal
from tests.standins.slack_requests import message


def test_unset_settings_allow_anyone_anywhere() -> None:
    assert channel_ids("") is None and channel_ids(" , ") is None
    assert refusal("C1", allowed_channels=None, user_allowed=None) is None
    assert open_warnings("", "") == [
        "RECON_ALLOWED_CHANNELS is not set: /recon and mentions are taken in every channel recon is in",
        "RECON_USERS is not set: anyone in those channels may run /recon"]
    assert open_warnings("C1", "U1") == []


def test_a_channel_not_allowed_is_refused_and_told_where_to_ask() -> None:
    allowed = channel_ids(" C0INCIDENT ,C0BILLING")
    assert allowed == frozenset({"C0INCIDENT", "C0BILLING"})
    assert refusal("C0INCIDENT", allowed_channels=allowed, user_allowed=None) is None
    why = refusal("C0RANDOM", allowed_channels=allowed, user_allowed=True)
    assert why == f"{CHANNEL_REFUSED}; ask in <#C0BILLING>, <#C0INCIDENT>."


def test_a_channel_list_of_odd_ids_lists_none_of_them() -> None:
    assert refusal("C1", allowed_channels=frozenset({"<!here>"}), user_allowed=None) == f"{CHANNEL_REFUSED}."


@pytest.mark.parametrize(("user_allowed", "refused"), [(None, False), (True, False), (False, True)])
def test_a_person_not_in_recon_users_is_refused(user_allowed: bool | None, refused: bool) -> None:
    why = refusal("C1", allowed_channels=frozenset({"C1"}), user_allowed=user_allowed)
    assert why == (USER_REFUSED if refused else None)


def test_alert_bots_unset_take_any_bot_but_never_a_person() -> None:
    assert bot_ids("") is None
    assert from_alert_bot(message("C1", "x", bot_id="B0ANY"), None)
    assert not from_alert_bot(message("C1", "[FIRING:1] X", user="U1"), None)


def test_alert_bots_take_their_bot_id_or_app_id_only() -> None:
    allowed = bot_ids("B0ALERTMGR, A0GRAFANA")
    assert allowed == frozenset({"B0ALERTMGR", "A0GRAFANA"})
    assert from_alert_bot(message("C1", "x", bot_id="B0ALERTMGR"), allowed)
    assert from_alert_bot(message("C1", "x", bot_id="B0GRAFANABOT", app_id="A0GRAFANA"), allowed)
    assert from_alert_bot(message("C1", "x", bot_id="B0ALERTMGR", subtype="bot_message"), allowed)
    assert not from_alert_bot(message("C1", "x", bot_id="B0OTHER"), allowed)
    assert not from_alert_bot(message("C1", "x", bot_id="B0OTHER", subtype="bot_message"), allowed)
    assert not from_alert_bot(message("C1", "x", user="B0ALERTMGR"), allowed)
