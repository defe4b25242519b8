"""Pure SOS bookkeeping on the device: the cancel window and what the resident is shown.

Rules:

* Every SOS (button or voice) is sent; a second one while the first is pending is sent too (the
  collector folds repeats into one dispatch), and it restarts the cancel window.
* A cancel (long press, or a cancel phrase) applies to the latest SOS only, only within
  ``cancel_window_s`` of it, and only once. Outside the window it is ignored: once help is on its
  way, a caregiver — not a mis-heard word — decides whether to stand down.
* Feedback follows the SOS: ``sending`` (stored on disk, not yet at the broker) → ``sent`` (the
  broker acknowledged it) → ``confirmed`` (the collector opened a dispatch); ``cancelled`` after a
  cancel. The status LED and the spoken prompts are driven from this state.

``now`` is an argument everywhere: seconds on any monotonic clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Feedback(enum.Enum):
    IDLE = "idle"
    SENDING = "sending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass
class _Pending:
    message_id: str
    at: float
    cancelled: bool = False
    delivered: bool = False
    confirmed: bool = False


class SosTracker:
    """Tracks the latest SOS; decides whether a cancel applies."""

    def __init__(self, cancel_window_s: float) -> None:
        self.cancel_window_s = cancel_window_s
        self._latest: _Pending | None = None

    @property
    def feedback(self) -> Feedback:
        p = self._latest
        if p is None:
            return Feedback.IDLE
        if p.cancelled:
            return Feedback.CANCELLED
        if p.confirmed:
            return Feedback.CONFIRMED
        return Feedback.SENT if p.delivered else Feedback.SENDING

    @property
    def latest_id(self) -> str | None:
        return None if self._latest is None else self._latest.message_id

    def sos(self, message_id: str, now: float) -> Feedback:
        self._latest = _Pending(message_id, now)
        return self.feedback

    def cancel(self, now: float) -> str | None:
        """The id of the SOS to cancel now, or None when there is nothing to cancel."""
        p = self._latest
        if p is None or p.cancelled or now - p.at > self.cancel_window_s or now < p.at:
            return None
        p.cancelled = True
        return p.message_id

    def delivered(self, message_id: str) -> bool:
        """The broker acknowledged ``message_id``; True if that changed the feedback."""
        p = self._latest
        if p is None or p.message_id != message_id or p.delivered:
            return False
        p.delivered = True
        return not p.cancelled and not p.confirmed

    def confirmed(self, message_id: str) -> bool:
        """The collector acknowledged ``message_id``; True if that changed the feedback."""
        p = self._latest
        if p is None or p.message_id != message_id or p.confirmed:
            return False
        p.confirmed = True
        p.delivered = True
        return not p.cancelled
