"""The reconcile modal, pure: sealed metadata, views rendered through the one Jinja
environment with hostile values kept as data, replies about bad exports escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.errors import BadInput
from bot.export.csvfile import ExportInvalid
from bot.flows.slack_export import export_problem_text, file_host_allowed
from bot.settings import Settings
from bot.slack.mentions import Mentions
from bot.slack.modal import ExportOffer, Origin, Prefill, form_view, loading_view, metadata_key, seal, unseal

KEY = metadata_key(b"s" * 32)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
HOSTILE = 'usage"}],"x":{"a":"<!channel> & `rm`.csv'


def test_metadata_round_trips_and_refuses_tampering() -> None:
    o = Origin("message", "C0DISPUTES", "1700000000.000100", "F0ABC", HOSTILE)
    assert unseal(seal(o, KEY), KEY) == o
    body, mac = seal(o, KEY).split(".")
    for bad in (f"{body}.{mac[:-2]}AA", f"{body[:-2]}AA.{mac}", "x", "", seal(o, metadata_key(b"t" * 32)),
                "a.b.c", "x" * 5000):
        with pytest.raises(BadInput):
            unseal(bad, KEY)
    with pytest.raises(BadInput):  # well sealed, but not a place recon would post
        unseal(seal(Origin("message", "#general", "now"), KEY), KEY)


def test_views_keep_hostile_values_as_data() -> None:
    m = Mentions(correlation_ids=["corr-1", "corr-2"])
    origin = Origin("message", "C0DISPUTES", "1700000000.000100", "F0ABC", HOSTILE)
    view = form_view(origin, Prefill(m, ExportOffer("F0ABC", HOSTILE, 10), [f"remark about {HOSTILE}"]), NOW, KEY)
    assert len(view["title"]["text"]) <= 24 and view["submit"]
    [export] = [b for b in view["blocks"] if b.get("block_id") == "export"]
    # plain_text: Slack shows it as typed, so it is kept as it is (JSON-escaped, not mrkdwn-escaped)
    assert export["element"]["options"][0]["text"]["text"] == f"Reconcile the attached export {HOSTILE}"
    [remarks] = [b for b in view["blocks"] if b.get("block_id") == "remarks"]
    shown = remarks["elements"][0]["text"]
    assert "<!channel>" not in shown and "&lt;!channel&gt; &amp;" in shown
    assert "x" not in view  # nothing injected at the top level
    assert loading_view("message")["blocks"][0]["text"]["text"].startswith(":hourglass")
    assert "submit" not in loading_view("global")
    json.dumps(view)


def test_a_bad_export_reply_names_line_and_column_escaped() -> None:
    text = export_problem_text(HOSTILE, ExportInvalid("not a decimal: '<x>'", 7, "amount"))
    assert "line 7, column amount" in text and "<!channel>" not in text and "&lt;x&gt;" in text


def test_the_bot_token_goes_to_slacks_file_host_only() -> None:
    s = Settings()  # type: ignore[call-arg]
    assert file_host_allowed("https://files.slack.com/files-pri/T1-F1/download/u.csv", s)
    assert not file_host_allowed("http://files.slack.com/files-pri/T1-F1/download/u.csv", s)
    assert not file_host_allowed("https://evil.example/files-pri/T1-F1/download/u.csv", s)
    proxied = Settings(SLACK_API_URL="http://127.0.0.1:9/api")  # type: ignore[call-arg]
    assert file_host_allowed("http://127.0.0.1:9/files-pri/T1-F1/download/u.csv", proxied)
