"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping every message it accepts.

Example::

    with SmtpServer() as server:
        SmtpNotifier(server.host, server.port, sender="anbu@example.org").send(...)
        [mail] = server.wait_for(1)
        assert mail.message["Subject"] == "[긴급] SOS"

Options: ``port`` (default: a free one; pass an old server's port to play a restart), ``users``
turns on AUTH LOGIN/PLAIN (allowed without TLS, as in a test), ``starttls`` offers STARTTLS with a
fresh self-signed certificate (``client_ssl_context()`` trusts it).
Failures on demand: :meth:`refuse_recipient` (at RCPT) and :meth:`fail_next` (at DATA).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    accepted_monotonic: float
    accepted_at: dt.datetime
    authenticated_as: str | None = None
    over_tls: bool = False
    raw: bytes = field(default=b"", repr=False)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._server._refused.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._server._accept(session, envelope)


class SmtpServer:
    """aiosmtpd ``Controller`` on a free port of 127.0.0.1; use as a context manager."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        starttls: bool = False,
    ) -> None:
        self.port = port or free_port(self.host)
        self.received: list[ReceivedMail] = []
        self._users = dict(users or {})
        self._refused: dict[str, str] = {}
        self._failures: list[str] = []
        self._condition = threading.Condition()
        self._running = False
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._cert_file: Path | None = None
        kwargs: dict[str, Any] = {}
        if self._users:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False}
        if starttls:
            kwargs["tls_context"] = self._make_tls_context()
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    # -- scripted behaviour -------------------------------------------------------------------

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 mailbox unavailable") -> None:
        """Answer RCPT TO for ``address`` with ``reply`` from now on."""
        self._refused[address.lower()] = reply

    def fail_next(self, count: int = 1, reply: str = "451 4.3.0 try again later") -> None:
        """Answer the next ``count`` messages' DATA with ``reply`` (not stored)."""
        with self._condition:
            self._failures.extend([reply] * count)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self._cert_file is None:
            raise RuntimeError("server was started without starttls=True")
        return ssl.create_default_context(cafile=str(self._cert_file))

    # -- observing ----------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """The first ``count`` messages once they have arrived; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} e-mails within {timeout} s, got {len(self.received)}"
                    )
                self._condition.wait(left)
            return list(self.received[:count])

    # -- server side --------------------------------------------------------------------------

    def _accept(self, session: Any, envelope: Any) -> str:
        with self._condition:
            if self._failures:
                return self._failures.pop(0)
        raw: bytes = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        mail = ReceivedMail(
            message=parsed,
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            accepted_monotonic=time.monotonic(),
            accepted_at=dt.datetime.now(dt.UTC),
            authenticated_as=auth.decode() if isinstance(auth, bytes) else auth,
            over_tls=session.ssl is not None,
            raw=raw,
        )
        with self._condition:
            self.received.append(mail)
            self._condition.notify_all()
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self._users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _make_tls_context(self) -> ssl.SSLContext:
        self._tmp = tempfile.TemporaryDirectory(prefix="anbu-smtp-")
        cert_file, key_file = _self_signed_certificate(Path(self._tmp.name), self.host)
        self._cert_file = cert_file
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    # -- context manager ----------------------------------------------------------------------

    def start(self) -> SmtpServer:
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop listening (idempotent); what was received stays readable."""
        if self._running:
            self._running = False
            self._controller.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _self_signed_certificate(directory: Path, ip: str) -> tuple[Path, Path]:
    """A one-day certificate for ``ip`` and localhost, and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anbu test smtp")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
