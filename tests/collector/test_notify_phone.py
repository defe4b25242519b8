"""Mobile numbers as welfare staff type them, normalised to E.164 (pure)."""

from __future__ import annotations

import pytest

from collector.notify.phone import normalise_mobile_number


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("010-1234-5678", "+821012345678"),
        ("01012345678", "+821012345678"),
        ("010 1234 5678", "+821012345678"),
        ("010.1234.5678", "+821012345678"),
        (" 010-1234-5678 ", "+821012345678"),
        ("+82 10-1234-5678", "+821012345678"),
        ("+821012345678", "+821012345678"),
        ("+82 010-1234-5678", "+821012345678"),
        ("+82 (0)10 1234 5678", "+821012345678"),
        ("011-123-4567", "+82111234567"),
        ("016-1234-5678", "+821612345678"),
        ("019-123-4567", "+82191234567"),
        ("+44 7700 900123", "+447700900123"),
        ("+1 (415) 555-0100", "+14155550100"),
    ],
)
def test_accepted_numbers_become_e164(raw: str, expected: str) -> None:
    assert normalise_mobile_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("02-123-4567", "not a Korean mobile"),  # Seoul landline
        ("031-123-4567", "not a Korean mobile"),
        ("+82 2-123-4567", "not a Korean mobile"),
        ("010-1234-567", "number of digits"),
        ("010-1234-56789", "number of digits"),
        ("011-12-3456", "number of digits"),
        ("1012345678", "not a Korean mobile"),
        ("010-1234-567O", "malformed"),  # letter O
        ("010/1234/5678", "malformed"),
        ("+0 123 456 789", "malformed international"),
        ("+1 234", "malformed international"),
        ("+12345678901234567", "malformed international"),
        ("+82-10-1234-5678x", "malformed"),
        ("０１０-１２３４-５６７８", "malformed"),  # full-width digits
        ("caregiver@example.org", "malformed"),
    ],
)
def test_refused_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_mobile_number(raw)
