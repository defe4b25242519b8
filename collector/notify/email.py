"""E-mail over SMTP: a UTF-8 message per notification, over connections kept open between sends.

Opening an SMTP connection (TCP, EHLO, STARTTLS, AUTH) costs several round trips, which matters
when an SOS must reach the caregiver within a second. So connections are kept in a small pool:
a send takes an idle one (checked with ``NOOP`` unless it was used moments ago), or opens a new
one; a connection that fails is thrown away, never reused. Each thread sends on its own
connection because ``smtplib.SMTP`` is not thread-safe.

Which failures are permanent (retrying cannot help): a malformed recipient address, and a 5xx
reply about this recipient or this message. Everything else is transient, including a refused
login or a missing STARTTLS: those are the operator's to fix, and a message held for a few
retries can still go out once they have.

Example::

    notifier = SmtpNotifier("smtp.example.org", 587, sender="안부 <anbu@example.org>",
                            username="anbu", password="...", starttls=True)
    notifier.send("caregiver@example.org", "[긴급] 김영희 님 SOS", "...", reference="n42")
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from types import TracebackType

from collector.notify.base import NotifyError
from collector.settings import CollectorSettings

_LOG = logging.getLogger(__name__)

# An ASCII addr-spec: dot-atom local part and a host name. Deliberately narrower than RFC 5322
# (no quoted local parts, no IP literals, no SMTPUTF8): what a welfare office actually enters.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_REFERENCE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def check_address(address: str) -> str:
    """``address`` stripped if it is a plain ``local@domain``; ValueError saying why if not."""
    candidate = address.strip()
    if not candidate:
        raise ValueError("empty e-mail address")
    if len(candidate) > 254 or not _ADDRESS.fullmatch(candidate):
        raise ValueError(f"malformed e-mail address {address!r}")
    if len(candidate.split("@", 1)[0]) > 64:
        raise ValueError(f"local part too long in {address!r}")
    return candidate


def message_id_for(reference: str, sender_address: str) -> str:
    """The same ``Message-ID`` for every attempt at one notification."""
    domain = sender_address.rpartition("@")[2] or "anbu.invalid"
    return f"<anbu.{_REFERENCE_UNSAFE.sub('-', reference)}@{domain}>"


class _ConnectionLost(NotifyError):
    """The connection broke (or timed out) mid-transaction: transient, and not to be reused."""


@dataclass(slots=True)
class _Connection:
    smtp: smtplib.SMTP
    last_used: float  # time.monotonic()


class SmtpNotifier:
    """The ``"email"`` channel: one plain-text UTF-8 message per notification.

    ``max_idle_connections`` bounds the pool; a connection idle longer than ``max_idle_s`` is
    closed rather than probed, because a silently dropped connection can make even ``NOOP`` wait
    for the whole timeout. One used within ``noop_after_s`` is reused without a probe.
    """

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_connections: int = 4,
        max_idle_s: float = 30.0,
        noop_after_s: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.sender_address = parseaddr(sender)[1] or sender
        check_address(self.sender_address)
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self.max_idle_connections = max_idle_connections
        self.max_idle_s = max_idle_s
        self.noop_after_s = noop_after_s
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> SmtpNotifier:
        """The notifier ``ANBU_SMTP_*`` describes; ValueError if ``smtp_host`` is not set."""
        if not settings.smtp_host:
            raise ValueError("smtp_host is not set (ANBU_SMTP_HOST): no e-mail can be sent")
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_use_starttls,
            timeout_s=settings.smtp_timeout_s,
        )

    def build_message(
        self, recipient: str, subject: str, body: str, *, reference: str
    ) -> EmailMessage:
        """The message as it will be sent (headers encoded when it is serialised)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id_for(reference, self.sender_address)
        message["X-Anbu-Reference"] = reference
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
        # base64 keeps Korean text intact through servers without 8BITMIME.
        message.set_content(body, charset="utf-8", cte=None if body.isascii() else "base64")
        return message

    def send(self, recipient: str, subject: str, body: str, *, reference: str) -> None:
        try:
            address = check_address(recipient)
        except ValueError as e:
            raise NotifyError(str(e), permanent=True) from None
        message = self.build_message(address, subject, body, reference=reference)
        connection, reused = self._checkout()
        try:
            self._send_on(connection, message, address)
        except _ConnectionLost as e:
            self._discard(connection)
            if not reused:
                raise
            # The server dropped a pooled connection between our check and the send: one more
            # try on a fresh connection, which is what the worker's retry would do anyway.
            _LOG.info(
                "smtp connection went stale, reconnecting",
                extra={"event": "smtp_reconnect", "reference": reference, "error": e.message},
            )
            connection = self._connect()
            try:
                self._send_on(connection, message, address)
            except BaseException:
                self._discard(connection)
                raise
        except BaseException:
            self._discard(connection)
            raise
        self._checkin(connection)

    def _send_on(self, connection: _Connection, message: EmailMessage, address: str) -> None:
        """One SMTP transaction; every failure comes out as a NotifyError."""
        try:
            refused = connection.smtp.send_message(
                message, from_addr=self.sender_address, to_addrs=[address]
            )
        except smtplib.SMTPRecipientsRefused as e:
            code, reply = e.recipients.get(address, (550, b"refused"))
            raise NotifyError(
                f"recipient refused: {code} {_text(reply)}", permanent=500 <= code < 600
            ) from None
        except smtplib.SMTPSenderRefused as e:
            raise NotifyError(
                f"sender refused: {e.smtp_code} {_text(e.smtp_error)}", permanent=False
            ) from None
        except smtplib.SMTPDataError as e:
            raise NotifyError(
                f"message refused: {e.smtp_code} {_text(e.smtp_error)}",
                permanent=500 <= e.smtp_code < 600,
            ) from None
        except smtplib.SMTPServerDisconnected as e:
            raise _ConnectionLost(self._describe(e), permanent=False) from e
        except smtplib.SMTPResponseException as e:
            raise NotifyError(self._describe(e), permanent=False) from None
        except smtplib.SMTPException as e:
            raise NotifyError(self._describe(e), permanent=False) from None
        except OSError as e:  # after the SMTP exceptions, which are OSErrors too
            raise _ConnectionLost(self._describe(e), permanent=False) from e
        if refused:  # only possible with several recipients; kept for completeness
            raise NotifyError(f"recipient refused: {refused}", permanent=True)
        connection.last_used = time.monotonic()

    def _checkout(self) -> tuple[_Connection, bool]:
        """An open connection and whether it was reused from the pool."""
        while True:
            with self._lock:
                if self._closed:
                    raise NotifyError("e-mail notifier is closed", permanent=False)
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(), False
            idle_s = time.monotonic() - connection.last_used
            if idle_s > self.max_idle_s:
                self._discard(connection)
                continue
            if idle_s <= self.noop_after_s or self._alive(connection):
                return connection, True
            self._discard(connection)

    def _alive(self, connection: _Connection) -> bool:
        try:
            code, _ = connection.smtp.noop()
        except (smtplib.SMTPException, OSError):
            return False
        return code == 250

    def _connect(self) -> _Connection:
        smtp: smtplib.SMTP | None = None
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
        except (smtplib.SMTPException, OSError) as e:
            if smtp is not None:
                _close_quietly(smtp)
            raise NotifyError(self._describe(e), permanent=False) from e
        _LOG.debug(
            "smtp connected", extra={"event": "smtp_connect", "host": self.host, "port": self.port}
        )
        return _Connection(smtp, time.monotonic())

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, smtplib.SMTPResponseException):
            detail = f"{error.smtp_code} {_text(error.smtp_error)}"
        else:
            detail = str(error) or "no detail"
        return f"smtp {self.host}:{self.port}: {type(error).__name__}: {detail}"

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle_connections:
                self._idle.append(connection)
                return
        _close_quietly(connection.smtp)

    def _discard(self, connection: _Connection) -> None:
        _close_quietly(connection.smtp)

    def close(self) -> None:
        """Close idle connections; sends already under way finish on their own."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            _close_quietly(connection.smtp)

    def __enter__(self) -> SmtpNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
