"""When to try a failed notification again, or give up. Pure: ``now`` is an argument.

Backoff doubles from ``first_delay_s`` up to ``max_delay_s``: 2, 4, 8, 16, 32, 64, 128, 256 s, then
every 300 s. While the notification's dispatch is still open nobody has taken the alarm, so a
transient failure is retried for as long as that lasts: a channel that is down for an hour delays
the message by an hour plus at most one backoff step, it does not lose it (undelivered.py tells
someone else meanwhile). Only once the dispatch is acknowledged or resolved does ``max_attempts``
apply. A server's ``Retry-After`` lengthens the wait, but never past ``max_delay_s``.

=================================  ==================  ===================================
after a failed attempt number n    dispatch            decision
=================================  ==================  ===================================
permanent error                    any                 give up (FAILED)
transient error                    open                retry at now + backoff(n)
transient error, n >= max_attempts not open            give up (FAILED)
transient error, n < max_attempts  not open            retry at now + backoff(n)
=================================  ==================  ===================================

backoff(n) = min(max_delay_s, first_delay_s * 2^(n-1)), or later if the server asked for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    """Attempts in all, the first one included, once the dispatch is no longer open."""
    first_delay_s: float = 2.0
    """Wait after the first failure; doubled after each further one."""
    max_delay_s: float = 300.0
    """Longest wait between two attempts, whatever the server asks."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts={self.max_attempts} must be at least 1")
        if self.first_delay_s < 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError("need 0 <= first_delay_s <= max_delay_s")


def retry_delay_s(attempts: int, policy: RetryPolicy) -> float:
    """Seconds to wait after ``attempts`` failed attempts (``attempts`` >= 1)."""
    exponent = min(max(attempts - 1, 0), 62)  # beyond this the cap applies anyway
    return float(min(policy.max_delay_s, policy.first_delay_s * 2**exponent))


def next_attempt_at(
    *,
    attempts: int,
    permanent: bool,
    now: dt.datetime,
    policy: RetryPolicy,
    retry_after_s: float | None = None,
    dispatch_open: bool = False,
) -> dt.datetime | None:
    """When to try again after failed attempt number ``attempts``; None means give up."""
    if permanent:
        return None
    if attempts >= policy.max_attempts and not dispatch_open:
        return None
    delay_s = retry_delay_s(attempts, policy)
    if retry_after_s is not None:
        delay_s = max(delay_s, min(retry_after_s, policy.max_delay_s))
    return now + dt.timedelta(seconds=delay_s)
