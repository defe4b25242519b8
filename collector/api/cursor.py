"""Keyset paging: a page's ``next_cursor`` names the sort key of its last item.

    cursor = encode_cursor([created_at, 42])      # "WyIyMDI2LTAzLTAyVDAxOjAwOjAwKzAwOjAwIiw0Ml0"
    decode_cursor(cursor, (dt.datetime, int))     # [datetime(2026, 3, 2, 1, 0, tzinfo=UTC), 42]

The next page is "rows after this key in the list's order", which an index answers directly, so
the last page costs what the first does (an offset makes the database walk every skipped row).
A cursor is opaque to clients: URL-safe base64 of a JSON list. Anything that does not decode to
values of the expected kinds, in the range both databases store, is :class:`BadCursor` (422).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
"""Integer keys are 32-bit columns on PostgreSQL."""
MAX_TEXT = 64


class BadCursor(ValueError):
    """The ``cursor`` parameter is not one this API made."""


def encode_cursor(values: Sequence[dt.datetime | int | str]) -> str:
    plain = [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The key values in ``cursor``, each of the matching kind in ``kinds``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadCursor("cursor is not one this API made: pass next_cursor as given") from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise BadCursor("cursor is not one this API made: pass next_cursor as given")
    return [_value(v, kind) for v, kind in zip(values, kinds, strict=True)]


def _value(value: object, kind: type) -> Any:
    if kind is int and type(value) is int and INT_MIN <= value <= INT_MAX:
        return value
    if kind is str and isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable():
        return value
    if kind is dt.datetime and isinstance(value, str) and len(value) <= 40:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # Within a year of the ends, so that moving to UTC cannot overflow.
            if moment.tzinfo is not None and 1970 <= moment.year <= 9998:
                return moment.astimezone(dt.UTC)
    raise BadCursor(f"cursor holds {value!r} where a {kind.__name__} key belongs")
