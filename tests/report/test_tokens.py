"""Signed, expiring report links: valid, expired, tampered, for another incident; the
secret from the setting or drawn once per install and kept in the store."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import SecretStr, ValidationError

from bot.errors import ConfigError, NotAuthorized
from bot.report.tokens import (
    ReportLinkRefused,
    check_token,
    install_secret,
    link_ttl,
    make_token,
    report_secret,
    report_url,
    token_expiry,
    verifying_secrets,
)
from bot.settings import Settings
from bot.store.store import Store

SECRET = b"k" * 32
INC = "INC-20261120-abc123"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # this file's own clock: links expire counted from it


def reason(secret: bytes, incident: str, token: str | None, now: datetime = NOW) -> str:
    with pytest.raises(ReportLinkRefused) as exc:
        check_token(secret, incident, token, now)
    assert isinstance(exc.value, NotAuthorized)
    assert str(exc.value)  # a sentence a person can act on
    return exc.value.reason


def test_valid_until_expiry_then_expired() -> None:
    token = make_token(SECRET, INC, NOW + timedelta(hours=72))
    check_token(SECRET, INC, token, NOW)
    check_token(SECRET, INC, token, NOW + timedelta(hours=71, minutes=59))
    assert reason(SECRET, INC, token, NOW + timedelta(hours=72)) == "expired"
    assert token_expiry(token) == NOW + timedelta(hours=72)


def test_token_is_urlsafe_and_carries_its_expiry() -> None:
    token = make_token(SECRET, INC, NOW)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    payload = token.split(".")[0]
    assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode() == f"{INC}|{int(NOW.timestamp())}"


def test_other_incident() -> None:
    token = make_token(SECRET, "INC-20261120-zzz999", NOW + timedelta(hours=1))
    assert reason(SECRET, INC, token) == "other_incident"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # signature byte
    lambda t: t.replace(".", "x.", 1),  # payload changed
    lambda t: t.split(".")[0],  # no signature
    lambda t: t + ".x",
    lambda t: "%%%." + t.split(".")[1],
    lambda t: "x" * 600,
])
def test_tampered_is_bad(mangle: object) -> None:
    token = make_token(SECRET, INC, NOW + timedelta(hours=1))
    assert reason(SECRET, INC, mangle(token)) == "bad"  # type: ignore[operator]


def test_extended_expiry_is_bad_not_expired() -> None:
    """Editing the expiry in the payload breaks the signature."""
    token = make_token(SECRET, INC, NOW - timedelta(hours=1))
    forged = base64.urlsafe_b64encode(f"{INC}|{int((NOW + timedelta(days=9)).timestamp())}".encode()).rstrip(b"=")
    assert reason(SECRET, INC, forged.decode() + "." + token.split(".")[1]) == "bad"


def test_another_secret_is_bad_and_missing_is_missing() -> None:
    token = make_token(b"other" * 8, INC, NOW + timedelta(hours=1))
    assert reason(SECRET, INC, token) == "bad"
    assert reason(SECRET, INC, None) == "missing"
    assert reason(SECRET, INC, "") == "missing"


def test_report_url_quotes() -> None:
    token = make_token(SECRET, INC, NOW)
    assert report_url("https://recon.example.com/", INC, token) == \
        f"https://recon.example.com/incidents/{INC}?token={token}"


async def test_install_secret_is_drawn_once_and_kept(store: Store) -> None:
    first = await install_secret(store.pool)
    assert len(first) == 32
    assert await install_secret(store.pool) == first
    assert await store.pool.fetchval("SELECT count(*) FROM report_secret") == 1
    # the setting wins when set
    configured = SimpleNamespace(report_secret=SecretStr("from-the-environment"))
    assert await report_secret(configured, store.pool) == b"from-the-environment"
    assert await report_secret(SimpleNamespace(report_secret=None), store.pool) == first


def test_ttl_setting() -> None:
    assert link_ttl(SimpleNamespace()) == timedelta(hours=72)
    assert link_ttl(SimpleNamespace(report_link_ttl_h=2)) == timedelta(hours=2)


async def test_report_link_needs_public_url(store: Store) -> None:
    from bot.commands.report import report_link

    with pytest.raises(ConfigError, match="RECON_PUBLIC_URL"):
        await report_link(SimpleNamespace(public_url=None), store, INC)
    url = await report_link(SimpleNamespace(public_url="https://r.example", report_link_ttl_h=1), store, INC, now=NOW)
    token = url.split("token=")[1]
    check_token(await install_secret(store.pool), INC, token, NOW + timedelta(minutes=59))
    assert url.startswith(f"https://r.example/incidents/{INC}?token=")


CURRENT = "c" * 40
PREVIOUS = "p" * 32


async def test_rotation_new_links_are_signed_with_the_current_secret_the_previous_still_opens(store: Store) -> None:
    from bot.report.links import report_link

    rotated = Settings(RECON_REPORT_SECRET=CURRENT, RECON_REPORT_SECRET_PREVIOUS=PREVIOUS,  # type: ignore[call-arg]
                       RECON_PUBLIC_URL="https://r.example")
    done = Settings(RECON_REPORT_SECRET=CURRENT, RECON_PUBLIC_URL="https://r.example")  # type: ignore[call-arg]
    old_link = make_token(PREVIOUS.encode(), INC, NOW + timedelta(hours=1))
    new_link = (await report_link(rotated, store, INC, now=NOW)).split("token=")[1]
    secrets = await verifying_secrets(rotated, store.pool)
    assert secrets == (CURRENT.encode(), PREVIOUS.encode())
    check_token(secrets, INC, old_link, NOW)
    check_token(secrets, INC, new_link, NOW)
    check_token(CURRENT.encode(), INC, new_link, NOW)  # signed with the current one
    assert reason(PREVIOUS.encode(), INC, new_link) == "bad"
    # once the previous secret is removed, its links stop opening
    after = await verifying_secrets(done, store.pool)
    assert after == (CURRENT.encode(),)
    with pytest.raises(ReportLinkRefused, match="not valid"):
        check_token(after, INC, old_link, NOW)
    with pytest.raises(ReportLinkRefused) as other:
        check_token(secrets, "INC-20261120-zzz999", old_link, NOW)
    assert other.value.reason == "other_incident"


@pytest.mark.parametrize("name", ["RECON_REPORT_SECRET", "RECON_REPORT_SECRET_PREVIOUS"])
def test_a_short_report_secret_is_refused_naming_the_setting_not_its_value(
        name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    short = "hunter2-is-31-bytes-long-......"
    assert len(short) == 31
    with pytest.raises(ValidationError) as exc:
        Settings(**{name: short})  # type: ignore[arg-type]
    assert f"{name} is shorter than 32 bytes" in str(exc.value) and short not in str(exc.value)
    Settings(**{name: short + "."})  # type: ignore[arg-type]  # 32 bytes: taken
    # recon refuses to start, and says why
    from bot.cli import EXIT_BAD_INPUT, main

    monkeypatch.setenv(name, short)
    assert main(["migrate"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{name} is shorter than 32 bytes" in err and short not in err
