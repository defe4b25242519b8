"""What every way of telling a person something looks like to the notification worker.

A notifier delivers one message to one recipient, or raises :class:`NotifyError` saying whether
trying again later could help. It keeps no queue of its own: the queue is the ``notifications``
table, so nothing is lost when the collector restarts.
"""

from __future__ import annotations

from typing import Protocol


class NotifyError(Exception):
    """A delivery that did not happen.

    ``permanent``: retrying cannot fix it (malformed address, recipient refused, gateway said the
    request is wrong). Otherwise it is transient (connection refused, timeout, server busy) and the
    worker tries again with backoff. ``retry_after_s``: the server asked us to wait this long.
    """

    def __init__(
        self, message: str, permanent: bool, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Notifier(Protocol):
    """One delivery channel ("email", "sms"); ``send`` blocks until delivered or raises."""

    channel: str

    def send(self, recipient: str, subject: str, body: str, *, reference: str) -> None:
        """Deliver ``subject`` and ``body`` to ``recipient``.

        ``reference`` identifies the notification and is the same on every retry, so a receiver
        (or a person reading two copies) can tell a repeat from a new message.
        Raises :class:`NotifyError`; nothing else is expected to escape.
        """
        ...
