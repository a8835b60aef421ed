"""Hostile text never becomes Slack markup: every template of templates/slack/ and
every Python renderer, given ``<!channel>``, a crafted link, a mention, ``&`` and
very long strings in every string it shows, yields mrkdwn (and fallback ``text``)
in which none of that input is markup. ``plain_text`` (headers, buttons) is not
parsed by Slack and is left as it is."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from typing import Any

import jinja2
import pytest
from jinja2 import meta

from bot.diagnosis.model import Correction, Diagnosis, Finding, FollowUp, ImpactRow, Sources, Subject, WindowOut
from bot.flows.given_up import given_up_message
from bot.flows.steps_report import StepReport, Verdict
from bot.render.alerts import alert_message, event_reply, storm_summary, verdict_reply
from bot.render.approvals import prompt_message, short
from bot.render.mrkdwn import esc, link, mention
from bot.render.slack import (
    Message,
    follow_ups_message,
    parent_message,
    step_message,
    verification_message,
)
from bot.render.templating import environment, render_json
from bot.store.alerts import AlertGroup
from bot.store.approvals import Prompt
from bot.store.jobs import Job
from tests.constants import T

HOSTILE = ("<!channel> <!here|here> <@U0HOSTILE> <!subteam^S0HOSTILE|@team> <#C0HOSTILE> "
           "<https://evil.example/x|click here> <javascript:alert(1)|x> a & b &lt; *bold* _it_ `code` ")
LONG = HOSTILE * 40  # ~6,000 characters: clipping must not undo the escaping
# what the input tries to make into markup: none of it may reach a mrkdwn text raw
RAW = ("<!channel>", "<!here", "<@U0HOSTILE", "<!subteam", "<#C0", "<https://evil", "<javascript")
OUR_URL = "https://recon.example/incidents/INC-20261120-abcdef?sig=a&exp=1"


def mrkdwn_texts(node: Any) -> Iterator[str]:
    """Every text Slack reads as mrkdwn: mrkdwn objects, at any depth."""
    if isinstance(node, list):
        for item in node:
            yield from mrkdwn_texts(item)
    elif isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            if isinstance(value, (list, dict)):
                yield from mrkdwn_texts(value)


def assert_no_markup_from_input(msg: Message | list[dict[str, Any]]) -> None:
    blocks = msg.blocks if isinstance(msg, Message) else msg
    texts = list(mrkdwn_texts(blocks))
    assert texts, "no mrkdwn text rendered"
    if isinstance(msg, Message):
        texts.append(msg.text)  # the fallback: notifications read it as mrkdwn
    for text in texts:
        for raw in RAW:
            assert raw not in text, f"{raw!r} reached Slack as markup in {text[:300]!r}"
        assert "&amp;lt;" not in text.replace("&amp;lt; *bold*", ""), f"escaped twice: {text[:300]!r}"


# ------------------------------------------------------------- every template


def slack_templates() -> list[str]:
    folder = resources.files("bot.templates") / "slack"
    return sorted(f"slack/{p.name}" for p in folder.iterdir() if p.name.endswith(".j2"))


def hostile_context(name: str) -> dict[str, Any]:
    """Every variable the template reads, hostile: lists of hostile strings for the
    ones it loops over, a mapping answering every key hostile for ``verdict``."""
    env = environment()
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    names = meta.find_undeclared_variables(env.parse(source))
    ctx: dict[str, Any] = {}
    for var in names:
        if var in ("fields", "findings", "chunks"):
            ctx[var] = [HOSTILE, LONG, HOSTILE]
        elif var == "verdict":
            ctx[var] = defaultdict(lambda: LONG)
        elif var == "buttons":
            ctx[var] = True
        elif var == "prompt_id":
            ctx[var] = 7
        else:
            ctx[var] = LONG
    return ctx


def test_there_are_templates_to_walk() -> None:
    assert {"slack/alert.json.j2", "slack/parent.json.j2", "slack/prompt.json.j2", "slack/step.json.j2",
            "slack/storm.json.j2"} <= set(slack_templates())


@pytest.mark.parametrize("name", slack_templates())
def test_every_slack_template_escapes_every_mrkdwn_value(name: str) -> None:
    blocks = render_json(name, **hostile_context(name))
    assert_no_markup_from_input(blocks)
    blob = json.dumps(blocks)
    assert "&lt;!channel&gt;" in blob  # shown, as text


@pytest.mark.parametrize("name", slack_templates())
def test_a_template_variable_nobody_passes_fails_loudly(name: str) -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_json(name)


# ------------------------------------------------------------- the renderers


def finding(summary: str = HOSTILE) -> Finding:
    return Finding(check="wrong_source", app_instance_id="ai-1", org_id="org-1", project_id="prj-1",
                   owning_layer="attribution_mapping", usage_record_ids=[HOSTILE, "ur-2", "ur-3", "ur-4"],
                   summary=summary, impact_minor=123, currency="USD")


def diagnosis() -> Diagnosis:
    return Diagnosis(subject=Subject(correlation_id="corr-1"), window=WindowOut(start=T, end=T),
                     findings=[finding(), finding(LONG)], scope="app_instance", complete=False,
                     sources=Sources(loki="error"),
                     impact=[ImpactRow(org_id=HOSTILE, project_id="prj-1", app_instance_id="ai-1", currency="USD",
                                       overcharged_minor=123)])


def group(**over: Any) -> AlertGroup:
    base: dict[str, Any] = dict(
        group_id=1, source="slack", group_key=HOSTILE, status="firing", alertname=HOSTILE, severity=HOSTILE,
        labels={k: HOSTILE for k in ("severity", "org_id", "project_id", "app_instance_id", "correlation_id")},
        annotations={"summary": LONG, "description": HOSTILE, "runbook_url": "https://evil.example/x|<!channel>"},
        subject={"correlation_id": HOSTILE}, channel="C1", route=None, generation=1, storm_id=None,
        anchor_ts=None, thread_ts=None, incident_id="INC-20261120-abcdef",
        verdict={"checks": [HOSTILE], "scope": HOSTILE, "impact": HOSTILE, "freeze": True, "complete": False},
        notifications=2, alerts_firing=1, first_seen=T, last_seen=T, fired_at=T, resolved_at=None, db_now=T)
    base.update(over)
    return AlertGroup(**base)


def test_the_diagnosis_thread_escapes_what_it_shows() -> None:
    assert_no_markup_from_input(parent_message(Subject(correlation_id="corr-1"), "done", diagnosis(),
                                               incident_id=HOSTILE, incident_url=OUR_URL, requested_by=HOSTILE,
                                               freeze_note=HOSTILE))
    assert_no_markup_from_input(parent_message(Subject(correlation_id="corr-1"), HOSTILE, None,
                                               incident_id="INC-1", incident_url="https://evil.example|<!here>"))
    report = StepReport(name="logs", title=HOSTILE, state="partial", lines=[HOSTILE, LONG],
                        findings=[finding() for _ in range(25)], verdict=Verdict(by_check={"wrong_source": 25}))
    assert_no_markup_from_input(step_message(report, 1, 6, incident_url=OUR_URL))


def test_follow_ups_and_corrections_escape_what_they_show() -> None:
    fu = FollowUp(owning_layer="attribution_mapping", fix=LONG, checks=["wrong_source"], impact={"USD": 5})
    corr = Correction(action="reverse_debit", org_id=HOSTILE, project_id=HOSTILE, reverses_entry_id=HOSTILE,
                      amount_minor=5, currency="USD", correlation_id=HOSTILE, reason=HOSTILE, check="wrong_source")
    assert_no_markup_from_input(follow_ups_message([fu], [corr], incident_url=OUR_URL))


def test_verification_escapes_what_it_shows() -> None:
    v = {"incident_id": HOSTILE, "recovered": False, "complete": False, "before_checks": {"wrong_source": 2},
         "after_checks": {"wrong_source": 1}, "criteria": [{"text": HOSTILE, "holds": False, "before": 2, "after": 1}]}
    assert_no_markup_from_input(verification_message(v, incident_url=OUR_URL))


def test_alert_messages_escape_labels_annotations_and_links() -> None:
    msg = alert_message(group(), state="triaging", incident_url=OUR_URL)
    assert_no_markup_from_input(msg)
    context = list(mrkdwn_texts(msg.blocks))[-1]
    assert f"<{OUR_URL}|INC-20261120-abcdef>" in context  # recon's own link stays a link
    assert "<https://evil.example" not in context and "runbook" in context
    ok = alert_message(group(annotations={"runbook_url": "https://runbooks.example/drift"}), state="open")
    assert "<https://runbooks.example/drift|runbook>" in list(mrkdwn_texts(ok.blocks))[-1]
    for kind in ("resolve", "refire", HOSTILE):
        assert_no_markup_from_input(event_reply(kind, group()))
    assert_no_markup_from_input(verdict_reply(group(verdict={"error": LONG})))
    assert_no_markup_from_input(verdict_reply(group()))
    assert_no_markup_from_input(storm_summary("C1", [group(group_id=i) for i in range(30)]))


def test_prompts_and_short_replies_escape_what_they_show() -> None:
    p = Prompt(prompt_id=3, incident_id=HOSTILE, kind="freeze", channel="C1", thread_ts=None, message_ts=None,
               scope={"orgs": [HOSTILE], "projects": [[HOSTILE, HOSTILE]], "app_instances": [[HOSTILE, "p", LONG]]},
               reason=LONG, quorum=1, status="approved", freeze_id=1, created_at=T, expires_at=T + timedelta(hours=1),
               decided_at=T, decided_by=[HOSTILE, "U0APPROVER"])
    msg = prompt_message(p, {HOSTILE: "approve"}, who=HOSTILE, approve_emoji="white_check_mark", decline_emoji="x")
    assert_no_markup_from_input(msg)
    assert "<@U0APPROVER>" in json.dumps(msg.blocks)  # a user id is still a mention
    assert_no_markup_from_input(short(HOSTILE))


def test_a_given_up_job_escapes_its_error() -> None:
    job = Job(job_id=1, kind=HOSTILE, dedup_key="k", payload={}, status="failed", attempts=3, max_attempts=3,
              lease_owner=None, lease_until=None, last_error=LONG, incident_id=None, created_at=T)
    assert_no_markup_from_input(given_up_message(job))


# ------------------------------------------------------------- the helper


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://x.example/a|b", "https://x.example/<!here>",
                                 "https://x.example/a b", "ftp://x.example/", "https://x.example/\n", "",
                                 "https://x.example/" + "a" * 2000, None])
def test_a_link_with_an_unsafe_url_is_its_label_as_text(url: str | None) -> None:
    assert link(url, "<!channel> & co") == "&lt;!channel&gt; &amp; co"


def test_a_link_escapes_its_label_and_marked_text_is_not_escaped_twice() -> None:
    made = link("https://recon.example/r?a=1&b=2", "<b> & c")
    assert made == "<https://recon.example/r?a=1&b=2|&lt;b&gt; &amp; c>"
    assert esc(made) == made and esc(esc("<")) == "&lt;"
    assert mention("U0ABC123") == "<@U0ABC123>" and mention("<!here>") == "&lt;!here&gt;"
