"""Telling people: the Notifier protocol, the SMTP and HTTP-SMS adapters, and the worker that
delivers the ``notifications`` table through them (wired up in ``collector/runtime.py``)."""

from __future__ import annotations

from collector.notify.base import Notifier, NotifyError
from collector.notify.email import SmtpNotifier
from collector.notify.sms import HttpSmsNotifier
from collector.notify.worker import NotificationWorker, notification_reference

__all__ = [
    "HttpSmsNotifier",
    "NotificationWorker",
    "Notifier",
    "NotifyError",
    "SmtpNotifier",
    "notification_reference",
]
