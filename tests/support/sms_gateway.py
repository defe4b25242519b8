"""A real HTTP server standing in for the SMS provider, speaking docs/sms-gateway.md.

Example::

    with SmsGateway() as gateway:
        gateway.fail_next(2, status=500)            # then accept
        HttpSmsNotifier(gateway.url, token=gateway.token, sender="0200000000").send(...)
        [request] = gateway.wait_for(1)
        assert request.json["to"] == "+821012345678"

Every request is recorded, answered or not: ``requests`` (all) and ``delivered`` (answered 2xx).
Scripted answers (:meth:`fail_next`) are used up first; then ``default_status`` is answered,
after ``delay_s`` (to play a slow provider).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class GatewayRequest:
    """One request as the gateway saw it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    json: Any
    """The parsed body, or None if it was not JSON."""
    received_monotonic: float
    received_at: dt.datetime
    status: int
    """The status code the gateway answered with."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe behind: not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SmsGateway:
    """A ``ThreadingHTTPServer`` on a free port of 127.0.0.1; use as a context manager."""

    host = "127.0.0.1"
    token = "test-sms-token"

    def __init__(self, *, default_status: int = 200, delay_s: float = 0.0) -> None:
        self.default_status = default_status
        self.delay_s = delay_s
        self.requests: list[GatewayRequest] = []
        self._script: list[_Answer] = []
        self._sequence = itertools.count(1)
        self._condition = threading.Condition()
        self._server = _QuietServer((self.host, 0), self._handler_class())
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="test-sms-gateway",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/messages"

    # -- scripted behaviour -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        error: str = "provider unavailable",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and ``{"error": error}``."""
        with self._condition:
            self._script.extend([_Answer(status, {"error": error}, dict(headers or {}))] * count)

    def clear_failures(self) -> None:
        """Forget the failures scripted with :meth:`fail_next` (the gateway is back)."""
        with self._condition:
            self._script.clear()

    # -- observing ----------------------------------------------------------------------------

    @property
    def delivered(self) -> list[GatewayRequest]:
        """The requests answered with 2xx: the messages that would reach a phone."""
        with self._condition:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(
        self, count: int, timeout: float = 5.0, *, delivered: bool = False
    ) -> list[GatewayRequest]:
        """The first ``count`` requests (2xx only if ``delivered``); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                seen = [r for r in self.requests if not delivered or 200 <= r.status < 300]
                if len(seen) >= count:
                    return seen[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} SMS requests within {timeout} s, got {len(seen)}"
                    )
                self._condition.wait(left)

    # -- server side --------------------------------------------------------------------------

    def _next_answer(self, sequence: int) -> _Answer:
        with self._condition:
            if self._script:
                return self._script.pop(0)
        if 200 <= self.default_status < 300:
            return _Answer(self.default_status, {"id": f"sms-{sequence}", "status": "queued"})
        return _Answer(self.default_status, {"error": "refused by test gateway"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real provider would
            disable_nagle_algorithm = True  # else headers and body cost a 40 ms delayed ACK

            def do_POST(self) -> None:
                received_monotonic = time.monotonic()
                received_at = dt.datetime.now(dt.UTC)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                answer = gateway._next_answer(next(gateway._sequence))
                if gateway.delay_s:
                    time.sleep(gateway.delay_s)
                record = GatewayRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    json=parsed,
                    received_monotonic=received_monotonic,
                    received_at=received_at,
                    status=answer.status,
                )
                reply = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply)
                with gateway._condition:
                    gateway.requests.append(record)
                    gateway._condition.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    # -- context manager ----------------------------------------------------------------------

    def start(self) -> SmsGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SmsGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
