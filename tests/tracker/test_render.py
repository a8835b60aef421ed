"""Ticket bodies: hostile ids cannot break out of their code spans or ping anyone."""

from __future__ import annotations

from bot.tracker.model import TicketSpec
from bot.tracker.render import adf_text, ticket_doc, to_adf, to_markdown
from tests.tracker.conftest import facts, follow_up


def test_hostile_values_stay_inert() -> None:
    f = follow_up(instances=["ai-`x` @acme/oncall <script>", "-->"])
    fs = facts("INC-20260101-abcdef", f)
    spec = TicketSpec.of(fs, f)
    spec = TicketSpec(spec.incident_id, spec.layer, f, "javascript:alert(1)", ["c) [x](http://evil)"])
    md = to_markdown(ticket_doc(spec))
    assert "`ai-'x' @acme/oncall <script>`" in md  # inside a code span: no mention, no HTML
    assert "`-->`" in md and md.count("-->") == 2  # the marker's end and the inert code span
    assert "javascript:" not in md and "`c) [x](http://evil)`" in md
    adf = to_adf(ticket_doc(spec))
    assert "javascript:" not in str(adf)
    assert "recon:incident=INC-20260101-abcdef:layer=metering_emitter" in adf_text(adf)
