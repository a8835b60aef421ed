"""Prices in minor units (platform.md rule 5). Pure."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

from bot.diagnosis.model import RateCard

# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "XAF": 0, "XOF": 0, "PYG": 0,
    "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3,
}  # fmt: skip
_CTX = Context(prec=60)
_ONE = Decimal(1)
_MICROS = Decimal(1_000_000)


def minor_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def expected_minor(quantity: Decimal, unit_price_micros: int, currency: str) -> int:
    """round_half_even(quantity * unit_price_micros * 10^exponent / 1_000_000)."""
    exact = _CTX.divide(
        _CTX.multiply(_CTX.multiply(quantity, Decimal(unit_price_micros)), Decimal(10) ** minor_exponent(currency)),
        _MICROS,
    )
    return int(exact.quantize(_ONE, rounding=ROUND_HALF_EVEN, context=_CTX))


def format_minor(amount: int, currency: str | None) -> str:
    """``-12.34 USD`` / ``1,200 JPY``."""
    if currency is None:
        return str(amount)
    exp = minor_exponent(currency)
    sign = "-" if amount < 0 else ""
    a = abs(amount)
    if exp == 0:
        return f"{sign}{a:,} {currency}"
    whole, frac = divmod(a, 10**exp)
    return f"{sign}{whole:,}.{frac:0{exp}d} {currency}"


class Pricer:
    """Finds the one rate card for a usage row's attributes and prices it."""

    def __init__(self, cards: list[RateCard]) -> None:
        self._by_key: dict[tuple[str, str, str, bool], list[RateCard]] = defaultdict(list)
        for c in cards:
            self._by_key[(c.currency.upper(), c.resource_class, c.usage_source, c.control_plane)].append(c)
        self._card_cache: dict[tuple[str, str, str, bool, str | None, datetime], RateCard | None] = {}
        self._price_cache: dict[tuple[str, Decimal], int] = {}

    def card(
        self,
        currency: str,
        resource_class: str,
        usage_source: str,
        control_plane: bool,
        control_plane_scope: str | None,
        at: datetime,
    ) -> RateCard | None:
        key = (currency.upper(), resource_class, usage_source, control_plane, control_plane_scope, at)
        if key in self._card_cache:
            return self._card_cache[key]
        best: RateCard | None = None
        for c in self._by_key.get(key[:4], ()):
            if c.control_plane_scope is not None and c.control_plane_scope != control_plane_scope:
                continue
            if not (c.effective_from <= at and (c.effective_to is None or at < c.effective_to)):
                continue
            # A card that names the scope is more specific than one that does not;
            # between equals, the one that took effect last.
            rank = (c.control_plane_scope is not None, c.effective_from)
            if best is None or rank > (best.control_plane_scope is not None, best.effective_from):
                best = c
        self._card_cache[key] = best
        return best

    def price(
        self,
        currency: str,
        resource_class: str,
        usage_source: str,
        control_plane: bool,
        control_plane_scope: str | None,
        at: datetime,
        quantity: Decimal,
    ) -> int | None:
        card = self.card(currency, resource_class, usage_source, control_plane, control_plane_scope, at)
        if card is None:
            return None
        pkey = (card.rate_card_id, quantity)
        v = self._price_cache.get(pkey)
        if v is None:
            v = expected_minor(quantity, card.unit_price_micros, currency)
            self._price_cache[pkey] = v
        return v
