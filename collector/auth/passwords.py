"""Password hashing with scrypt (``hashlib.scrypt``; no extra dependency).

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later and old
hashes still verify (:func:`needs_rehash` says when to store a new one at the next login).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# OWASP's scrypt floor is N=2^17, r=8, p=1 (128 MiB); 2^15 keeps a login on a Raspberry-Pi-class
# collector under ~0.1 s while still costing an attacker 32 MiB per guess.
N = 2**15
R = 8
P = 1
_MAXMEM = 128 * R * N * 2
MIN_LENGTH = 8


class WeakPassword(ValueError):
    """The password is too short (or empty); the message says the rule."""


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A salted scrypt hash of ``password`` in the stored form above."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return "$".join(
        ["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)],
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False (never an exception) for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt + "=="),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    parts = stored.split("$")
    return len(parts) != 6 or parts[1:4] != [str(N), str(R), str(P)]


# Verified against when the username does not exist, so a login takes as long either way.
DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
