"""Signed, expiring, single-purpose links that SMS and e-mail carry to a caregiver's phone.

A link is ``{base}/l/{token}`` with ``token = "{dispatch_id}.{purpose}.{expires}.{signature}"``:
``expires`` is Unix seconds and ``signature`` is HMAC-SHA256 (base64url, truncated to 128 bits)
over the other three with the collector's ``link_secret`` (the short path keeps an SMS short).
The token grants nothing by itself: it only says "open dispatch N's page" until ``expires``;
the page still needs a login and the usual scoping (a caregiver sees only their households).
Changing the secret voids every link sent.

Pure: ``now`` is an argument; hashing is the only work done here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass

OPEN_DISPATCH = "dispatch"
"""The one purpose today: open the dispatch's page (acknowledge, on site, resolve there)."""
PURPOSES = frozenset({OPEN_DISPATCH})
_TOKEN = re.compile(
    r"^(?P<id>[0-9]{1,12})\.(?P<purpose>[a-z-]{1,24})\.(?P<exp>[0-9]{1,12})"
    r"\.(?P<sig>[A-Za-z0-9_-]{22})$"
)


class BadLink(ValueError):
    """The link is malformed, forged, for another purpose or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class LinkSigner:
    secret: bytes
    base_url: str
    ttl_s: float = 72 * 3600.0
    """How long a link opens its page; 72 h covers a weekend."""

    def token(self, dispatch_id: int, *, now: dt.datetime, purpose: str = OPEN_DISPATCH) -> str:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown link purpose {purpose!r}")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        expires = int(now.timestamp() + self.ttl_s)
        body = f"{int(dispatch_id)}.{purpose}.{expires}"
        return f"{body}.{self._sign(body)}"

    def url(self, dispatch_id: int, *, now: dt.datetime, purpose: str = OPEN_DISPATCH) -> str:
        return f"{self.base_url.rstrip('/')}/l/{self.token(dispatch_id, now=now, purpose=purpose)}"

    def verify(self, token: str, *, now: dt.datetime, purpose: str = OPEN_DISPATCH) -> int:
        """The dispatch id ``token`` opens; :class:`BadLink` if it may not be used at ``now``."""
        match = _TOKEN.match(token)
        if match is None:
            raise BadLink("this link is damaged: ask the welfare office for a new one")
        body = token.rsplit(".", 1)[0]
        if not hmac.compare_digest(self._sign(body), match["sig"]):
            raise BadLink("this link was not made by this collector")
        if match["purpose"] != purpose:
            raise BadLink(f"this link is for {match['purpose']!r}, not {purpose!r}")
        if now.timestamp() >= int(match["exp"]):
            raise BadLink("this link has expired: open the dispatch list after logging in")
        return int(match["id"])

    def _sign(self, body: str) -> str:
        mac = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


LINK_PLACEHOLDER = "{dispatch_link}"
"""What message texts carry where the link goes; filled when the dispatch id is known."""


def fill_links(body: str, dispatch_id: int, *, now: dt.datetime, signer: LinkSigner) -> str:
    """``body`` with :data:`LINK_PLACEHOLDER` (and the older ``{dispatch_id}``) filled in."""
    if LINK_PLACEHOLDER in body:
        body = body.replace(LINK_PLACEHOLDER, signer.url(dispatch_id, now=now))
    return body.replace("{dispatch_id}", str(dispatch_id))
