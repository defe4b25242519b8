"""Local stand-ins for the outside world in the demo: an SMTP server and an SMS gateway.

They are real servers on 127.0.0.1 (aiosmtpd speaks SMTP; the gateway is an HTTP server that
accepts the JSON request documented in docs/sms-gateway.md), so the collector's e-mail and SMS
adapters run unchanged. The phone network itself is the only thing that is not real.
"""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DemoMailbox:
    """An SMTP server that keeps what it receives (aiosmtpd, a dev/demo dependency)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                with mailbox._lock:
                    mailbox.messages.append(
                        {"to": list(envelope.rcpt_tos), "subject": str(parsed["subject"])}
                    )
                return "250 OK"

        if port == 0:
            import socket

            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self._controller = Controller(Handler(), hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.messages)


class DemoSmsGateway:
    """An HTTP server that accepts ``POST /`` SMS requests and keeps them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError:
                    self.send_response(400)
                    self.end_headers()
                    return
                gateway.requests.append(body)
                reply = json.dumps({"id": f"demo-{len(gateway.requests)}", "status": "queued"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def count(self) -> int:
        return len(self.requests)
