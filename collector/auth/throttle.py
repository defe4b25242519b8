"""Login rate limit: after ``max_failures`` failed logins within ``window_s`` for one username or
one client address, further attempts are refused until the oldest failure leaves the window.

Pure state machine: the caller passes ``now`` (seconds on a monotonic clock) and records outcomes.
Kept in memory per collector process: a restart forgets the failures, which is acceptable for a
limit meant to make guessing slow, not impossible to retry.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    max_failures: int = 5
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after_s(self, keys: tuple[str, ...], *, now: float) -> float:
        """0 when a login may be tried for all ``keys``; otherwise seconds until it may."""
        wait = 0.0
        for key in keys:
            times = self._prune(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, keys: tuple[str, ...], *, now: float) -> None:
        for key in keys:
            self._prune(key, now).append(now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            self._failures = {k: v for k, v in self._failures.items() if v}
        return times
