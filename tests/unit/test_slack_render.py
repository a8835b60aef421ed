"""Block Kit from the templates: Slack's limits hold, values are JSON-escaped, the
plain-text fallback is always there; the /recon parser."""

from __future__ import annotations

import json

import pytest

from bot.diagnosis.model import Diagnosis, Finding, ImpactRow, Subject, WindowOut
from bot.errors import BadInput
from bot.flows.steps_report import StepReport, Verdict
from bot.render.slack import MAX_BLOCKS, parent_message, step_message
from bot.slack.commands import parse
from tests.constants import T


def finding(i: int, summary: str = "x") -> Finding:
    return Finding(check="wrong_source", app_instance_id=f"ai-{i}", org_id="org-1", project_id="prj-1",
                   owning_layer="attribution_mapping", usage_record_ids=[f"ur-{i}-{k}" for k in range(9)],
                   summary=summary, impact_minor=123, currency="USD")


def texts(blocks: list[dict]) -> list[str]:  # type: ignore[type-arg]
    out = []
    for b in blocks:
        if "text" in b:
            out.append(b["text"]["text"])
        out.extend(f["text"] for f in b.get("fields", []))
        out.extend(e["text"] for e in b.get("elements", []) if "text" in e)
    return out


def test_a_reply_with_many_long_findings_stays_within_slack_limits() -> None:
    rep = StepReport(name="reconciliation", title="Reconciliation checklist",
                     lines=[f"line {i} " + "y" * 400 for i in range(80)],
                     findings=[finding(i, "z" * 5000) for i in range(120)],
                     verdict=Verdict(by_check={"wrong_source": 120}))
    msg = step_message(rep, 6, 6, "https://recon.example/incidents/INC-1")
    assert len(msg.blocks) <= MAX_BLOCKS
    assert all(len(t) <= 3000 for t in texts(msg.blocks))
    assert msg.text and "6/6" in msg.text
    assert "100 more finding(s)" in json.dumps(msg.blocks) and "recon.example/incidents/INC-1" in json.dumps(msg.blocks)


def test_parent_header_is_clipped_and_values_are_escaped() -> None:
    subject = Subject(correlation_id="c" * 128)
    d = Diagnosis(subject=subject, window=WindowOut(start=T, end=T), findings=[finding(1, 'a "quoted" <b> & \n x')],
                  impact=[ImpactRow(org_id="org-1", project_id="prj-1", app_instance_id="ai-1", currency="USD",
                                    overcharged_minor=123)], scope="app_instance")
    msg = parent_message(subject, "done", d, incident_id="INC-20261120-abcdef")
    header = msg.blocks[0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert "Drift found" in json.dumps(msg.blocks) and "1.23 USD" in json.dumps(msg.blocks)
    assert "wrong_source" in msg.text


def test_step_text_escapes_slack_control_characters() -> None:
    rep = StepReport(name="logs", title="Logs", lines=["<!channel> & <@U1> | injected"])
    blob = json.dumps(step_message(rep, 1, 6).blocks)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in blob and "<!channel>" not in blob


@pytest.mark.parametrize(("text", "action", "label"), [
    ("", "help", None), ("help", "help", None), ("corr-1", "diagnose", "correlation_id corr-1"),
    ("app ai-7 48h", "diagnose", "app_instance_id ai-7"), ("  corr-2   7d ", "diagnose", "correlation_id corr-2"),
])
def test_parse(text: str, action: str, label: str | None) -> None:
    cmd = parse(text)
    assert cmd.action == action
    assert (cmd.subject.label() if cmd.subject else None) == label


@pytest.mark.parametrize("text", ["app", 'x"}', "corr-1 48h extra", "corr-1 forever", "a b c d", "app ai-1 1y"])
def test_parse_refuses_with_a_reason(text: str) -> None:
    with pytest.raises(BadInput):
        parse(text)


def test_the_terminal_reads_slack_markup_as_a_person_would_and_escaped_text_as_typed() -> None:
    from bot.render.slack import blocks_to_text

    blocks = [{"type": "context", "elements": [{"type": "mrkdwn", "text": "requested by <@U0DEMO> · <!here>"}]},
              {"type": "section", "text": {"type": "mrkdwn",
                                           "text": "see <https://recon.example/incidents/INC-1|the report> · "
                                                   "typed: &lt;@U9&gt; &amp; &lt;!channel&gt;"}}]
    text = blocks_to_text(blocks)
    assert "requested by @U0DEMO · @here" in text
    assert "the report (https://recon.example/incidents/INC-1)" in text
    assert "typed: <@U9> & <!channel>" in text
