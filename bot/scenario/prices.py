"""The price book (rate cards for every currency, resource class, source and scope) and
rule 5: what an hour costs under the one matching card."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from bot.diagnosis.model import RateCard
from bot.scenario.draft import Draft, Row
from bot.scenario.spec import EXPONENTS, RESOURCE_CLASSES, ScenarioError

# (currency, resource class, usage source, when): one worker card replaced at that hour
RateChange = tuple[str, str, str, datetime]

# Price book: micro-units of the currency per second, for an app_runtime worker.
BASE_PRICE: dict[str, dict[str, int]] = {
    "USD": {"gpu.h100": 1000, "gpu.a100": 625, "cpu.standard": 40},
    "EUR": {"gpu.h100": 920, "gpu.a100": 580, "cpu.standard": 36},
    "JPY": {"gpu.h100": 150_000, "gpu.a100": 95_000, "cpu.standard": 6_000},
}
# (usage_source, control_plane, control_plane_scope) -> percent of the base price
FACTORS: tuple[tuple[str, bool, str | None, int], ...] = (
    ("app_runtime", False, None, 100),
    ("allocation", False, None, 80),
    ("app_runtime", True, "dedicated", 125),
    ("app_runtime", True, "shared", 110),
    ("allocation", True, "dedicated", 90),
    ("allocation", True, "shared", 85),
)
RATE_CHANGE_PERCENT = 104  # the replacing card costs 4% more (equal to no other card)


def charge_minor(quantity: Decimal, unit_price_micros: int, exponent: int) -> int:
    """Rule 5: round_half_even(quantity * unit_price_micros * 10**exponent / 10**6)."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = quantity * Decimal(unit_price_micros) * (Decimal(10) ** exponent) / Decimal(10**6)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def tie_quantity(price_micros: int, exponent: int) -> Decimal | None:
    """A quantity q (seconds, 6 decimals, 900 <= q <= 3300) whose charge is exactly
    k + 1/2 minor units with k even, preferring the largest."""
    unit = Fraction(price_micros * 10**exponent, 10**6)  # minor units per second
    k_max = int(Fraction(3300) * unit)
    for k in range(k_max - (k_max % 2), -1, -2):
        q = Fraction(2 * k + 1, 2) / unit
        if q < 900:
            return None
        if q <= 3300 and (q * 10**6).denominator == 1:
            return Decimal(int(q * 10**6)) / Decimal(10**6)
    return None


def price_book(draft: Draft, change: RateChange | None) -> list[str]:
    """A full price book per currency; ``change`` splits one worker card at a time (the
    ``rate_card_change`` plant). Returns the ids of the split card and its successor."""
    since = (draft.now - timedelta(days=365)).replace(hour=0, minute=0, second=0, microsecond=0)
    changed: list[str] = []
    for cur in ("USD", "EUR", "JPY"):
        for rc in RESOURCE_CLASSES:
            for source, cp, scope, pct in FACTORS:
                micros = BASE_PRICE[cur][rc] * pct // 100
                tail = f"cp-{scope}" if cp else "std"
                card_id = f"rc-{cur.lower()}-{rc}-{source}-{tail}"
                hit = (
                    change is not None
                    and not cp
                    and (cur, rc, source) == change[:3]
                )
                if hit and change is not None:
                    t = change[3]
                    draft.cards.append(
                        RateCard(card_id, rc, source, cp, scope, "second", micros, cur, since, t)
                    )
                    new_id = f"{card_id}-{t:%Y%m%dT%H}"
                    new_price = micros * RATE_CHANGE_PERCENT // 100
                    draft.cards.append(
                        RateCard(new_id, rc, source, cp, scope, "second", new_price, cur, t, None)
                    )
                    changed = [card_id, new_id]
                else:
                    draft.cards.append(
                        RateCard(card_id, rc, source, cp, scope, "second", micros, cur, since, None)
                    )
    return changed


def matching_card(
    draft: Draft, cur: str, rc: str, source: str, cp: bool, scope: str | None, at: datetime
) -> RateCard:
    """The one rate card that prices this usage at ``at`` (rule 5); more or none is an error."""
    hits = [
        c
        for c in draft.cards
        if c.currency == cur
        and c.resource_class == rc
        and c.usage_source == source
        and c.control_plane == cp
        and (c.control_plane_scope is None or c.control_plane_scope == scope)
        and c.effective_from <= at
        and (c.effective_to is None or at < c.effective_to)
    ]
    if len(hits) != 1:
        raise ScenarioError(f"{len(hits)} rate cards match {cur} {rc} {source} cp={cp} {scope}")
    return hits[0]


def price(
    draft: Draft, cur: str, rc: str, source: str, cp: bool, scope: str | None, at: datetime, q: Decimal
) -> int:
    c = matching_card(draft, cur, rc, source, cp, scope, at)
    return charge_minor(q, c.unit_price_micros, EXPONENTS[cur])


def price_recorded(draft: Draft, r: Row) -> int:
    return price(
        draft, r.inst.currency, r.comp.resource_class, r.usage_source, r.control_plane,
        r.control_plane_scope, r.period_start, r.quantity,
    )


def price_correct(draft: Draft, r: Row) -> int:
    i, c = r.inst, r.comp
    return price(
        draft, i.currency, c.resource_class, i.correct_source(c), c.control_plane,
        i.spec.control_plane_scope, r.period_start, r.quantity,
    )
