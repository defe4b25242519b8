"""Signed SMS/e-mail links: made and checked by the pure signer, with the clock passed in."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.links import LINK_PLACEHOLDER, BadLink, LinkSigner, fill_links

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
SIGNER = LinkSigner(b"secret-1", "https://anbu.example/", ttl_s=3600)


def test_a_link_opens_its_dispatch_until_it_expires() -> None:
    url = SIGNER.url(42, now=T0)
    assert url.startswith("https://anbu.example/l/42.dispatch.")
    token = url.rsplit("/", 1)[1]
    assert SIGNER.verify(token, now=T0 + dt.timedelta(minutes=59)) == 42
    with pytest.raises(BadLink, match="expired"):
        SIGNER.verify(token, now=T0 + dt.timedelta(hours=1))


def test_changing_the_dispatch_id_breaks_the_signature() -> None:
    token = SIGNER.token(42, now=T0)
    forged = "43" + token[2:]
    with pytest.raises(BadLink, match="not made by this collector"):
        SIGNER.verify(forged, now=T0)


def test_extending_the_expiry_breaks_the_signature() -> None:
    dispatch_id, purpose, expires, sig = SIGNER.token(42, now=T0).split(".")
    later = f"{dispatch_id}.{purpose}.{int(expires) + 86400}.{sig}"
    with pytest.raises(BadLink, match="not made by this collector"):
        SIGNER.verify(later, now=T0)


def test_another_secret_does_not_verify() -> None:
    token = LinkSigner(b"secret-2", "https://anbu.example").token(42, now=T0)
    with pytest.raises(BadLink, match="not made"):
        SIGNER.verify(token, now=T0)


def test_a_link_for_another_purpose_is_refused() -> None:
    token = SIGNER.token(42, now=T0)
    with pytest.raises(BadLink, match="is for 'dispatch'"):
        SIGNER.verify(token, now=T0, purpose="report")
    with pytest.raises(ValueError, match="unknown link purpose"):
        SIGNER.token(42, now=T0, purpose="report")


@pytest.mark.parametrize("token", ["", "42", "42.dispatch.1.x", "a.b.c.d", "42.dispatch.9.!" * 3])
def test_damaged_tokens_are_refused_with_a_clear_message(token: str) -> None:
    with pytest.raises(BadLink, match="damaged"):
        SIGNER.verify(token, now=T0)


def test_fill_links_signs_the_placeholder_and_keeps_the_old_one_working() -> None:
    body = f"출동 #{{dispatch_id}}: {LINK_PLACEHOLDER}"
    filled = fill_links(body, 7, now=T0, signer=SIGNER)
    assert filled.startswith("출동 #7: https://anbu.example/l/7.dispatch.")
    assert SIGNER.verify(filled.rsplit("/", 1)[1], now=T0) == 7


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SIGNER.token(1, now=dt.datetime(2026, 12, 1, 9, 0))
