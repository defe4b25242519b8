"""Mobile numbers as people write them, turned into E.164 for the SMS gateway. Pure.

Korean mobile numbers are accepted in the usual shapes — ``010-1234-5678``, ``01012345678``,
``010 1234 5678``, ``+82 10-1234-5678``, ``+82 (0)10 1234 5678`` — and become ``+821012345678``.
A number already in international form for another country (``+44 7700 900123``) is passed on.
Korean landlines (``02-…``, ``031-…``) and anything else are refused: SMS cannot reach them.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-.()]")
# 010 numbers have 8 digits after the prefix; the old 011/016–019 ranges have 7 or 8.
_KOREAN_MOBILE = re.compile(r"010\d{8}|01[16789]\d{7,8}")
_E164_DIGITS = re.compile(r"[1-9]\d{7,14}")


def normalise_mobile_number(raw: str) -> str:
    """``raw`` as ``+<country><number>``; ValueError naming the problem if it is not a mobile."""
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise ValueError("empty phone number")
    if compact.startswith("+"):
        digits = compact[1:]
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"malformed phone number {raw!r}")
        if digits.startswith("82"):
            national = digits[2:]
            # "+82 010-…" is common: the trunk 0 written after the country code.
            national = national if national.startswith("0") else "0" + national
            return _korean_mobile(national, raw)
        if not _E164_DIGITS.fullmatch(digits):
            raise ValueError(f"malformed international number {raw!r}")
        return "+" + digits
    if not compact.isdigit() or not compact.isascii():
        raise ValueError(f"malformed phone number {raw!r}")
    return _korean_mobile(compact, raw)


def _korean_mobile(national: str, raw: str) -> str:
    if not _KOREAN_MOBILE.fullmatch(national):
        if national.startswith("01"):
            raise ValueError(f"wrong number of digits for a Korean mobile number: {raw!r}")
        raise ValueError(f"not a Korean mobile number (010, 011, 016–019): {raw!r}")
    return "+82" + national[1:]
