"""What a Slack message names, for the reconcile shortcut's modal."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.slack.mentions import MAX_IDS, read_mentions

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def test_ids_of_every_shape_from_text_attachments_and_blocks() -> None:
    msg = {
        "text": "Customer org-acme disputes November 2026 charges, see corr-acme-3f9a2b1c0d4e.",
        "attachments": [{"fallback": "instance ai-ray-0007 in prj-acme-ml", "fields": [
            {"title": "correlation_id", "value": "req-77f1"}]}],
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "also <https://x/ai-k8s-0002|ai-k8s-0002>"}},
                   {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
                       {"type": "text", "text": "app_instance_id=ai-x9"}]}]}],
    }
    m = read_mentions(msg, NOW)
    assert m.org_ids == ["org-acme"]
    assert m.correlation_ids == ["corr-acme-3f9a2b1c0d4e", "req-77f1"]
    assert m.app_instance_ids == ["ai-ray-0007", "ai-k8s-0002", "ai-x9"]
    assert m.project_ids == ["prj-acme-ml"]
    assert (m.start, m.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def test_windows() -> None:
    assert read_mentions({"text": "usage for 2026-10 looks off"}, NOW).start == datetime(2026, 10, 1, tzinfo=UTC)
    m = read_mentions({"text": "charges in the last 48 hours"}, NOW)
    assert (NOW - m.start).total_seconds() == 48 * 3600 and m.end == NOW  # type: ignore[operator]
    assert read_mentions({"text": "this month: 2026-12"}, NOW).end == NOW  # not past now
    assert read_mentions({"text": "next month 2027-01"}, NOW).start is None
    assert read_mentions({"text": "last 400 days"}, NOW).start is None  # past the 90-day limit


def test_hostile_text_yields_only_valid_ids() -> None:
    many = " ".join(f"org-x{i}" for i in range(50))
    msg = {"text": "<!channel> corr-<script> org-acme\u202e ai-" + "a" * 300 + " prj-ok " + many,
           "blocks": [[[[[[[[[[[[[[[{"text": "corr-deep"}]]]]]]]]]]]]]]]}
    m = read_mentions(msg, NOW)
    assert m.correlation_ids == []  # 'corr-' followed by '<' is no id; the deep block is not read
    assert m.org_ids[0] == "org-acme" and len(m.org_ids) == MAX_IDS
    assert m.app_instance_ids == []  # too long for an id
    assert m.project_ids == ["prj-ok"]


def test_nothing_named() -> None:
    m = read_mentions({"text": "hello", "attachments": "not a list item", "blocks": None}, NOW)
    assert m.empty and m.start is None
