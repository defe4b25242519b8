"""Is a secret strong enough for production? Pure: a value in, a reason out (None = fine).

A list of known placeholders is not enough (issue 9: ``a``, ``''`` and ``CHANGETHIS`` were all
accepted), so a secret must also be long and varied enough:

==============================================  ===============================================
check                                           refused, for example
==============================================  ===============================================
at least ``MIN_LENGTH`` (16) characters         ``a``, ``''``, ``s3cret``
no placeholder word inside (case-insensitive)   ``CHANGETHIS``, ``change-me-0123456789abcdef``
at least ``MIN_DISTINCT`` (8) distinct chars    ``aaaaaaaaaaaaaaaaaaaa``, ``abababab…``
not one string repeated                         ``abcdefghabcdefghabcdefgh``
estimated entropy >= ``MIN_ENTROPY_BITS`` (64)  ``aaaaaaaaaaaabbbbbbbbbbbbcc…`` (skewed counts)
==============================================  ===============================================

The estimate is the string's Shannon entropy per character times its length: it under-rates
nothing random (``openssl rand -base64 32`` gives ~190 bits) and catches long, repetitive strings.
"""

from __future__ import annotations

import math
from collections import Counter

MIN_LENGTH = 16
MIN_DISTINCT = 8
MIN_ENTROPY_BITS = 64.0
PLACEHOLDERS = (
    "changethis",
    "change-me",
    "change_me",
    "changeme",
    "password",
    "passw0rd",
    "secret",
    "example",
    "default",
    "placeholder",
    "replace",
    "dummy",
    "1234567",
    "qwerty",
    "letmein",
    "admin",
    "test",
)


def entropy_bits(value: str) -> float:
    """Shannon entropy of the character distribution, times the length (bits)."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    per_char = -sum((n / total) * math.log2(n / total) for n in counts.values())
    return per_char * total


def weakness(value: str | None) -> str | None:
    """Why ``value`` is not a production secret, or None when it is acceptable."""
    if value is None or value == "":
        return "is empty"
    if len(value) < MIN_LENGTH:
        return f"has {len(value)} characters, fewer than {MIN_LENGTH}"
    lowered = value.lower()
    for word in PLACEHOLDERS:
        if word in lowered:
            return f"contains the placeholder word {word!r}"
    if len(set(value)) < MIN_DISTINCT:
        return f"uses only {len(set(value))} different characters"
    if value in (value + value)[1:-1]:
        return "is one short string repeated"
    bits = entropy_bits(value)
    if bits < MIN_ENTROPY_BITS:
        return f"is too predictable (about {bits:.0f} bits, fewer than {MIN_ENTROPY_BITS:.0f})"
    return None
