"""SMS through an HTTP gateway: one JSON POST per message, over a kept-alive connection.

The request and the replies it understands are described for operators in
``docs/sms-gateway.md``; change both together. In short::

    POST <ANBU_SMS_GATEWAY_URL>
    Authorization: Bearer <ANBU_SMS_GATEWAY_TOKEN>
    {"to": "+821012345678", "from": "0200000000", "text": "<subject>\\n<body>", "reference": "…"}

2xx: accepted. 408, 429 (honouring ``Retry-After``) and 5xx: transient. Any other 4xx: permanent.
A timeout or a refused connection: transient.
"""

from __future__ import annotations

import datetime as dt
import logging
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from collector.notify.base import NotifyError
from collector.notify.phone import normalise_mobile_number
from collector.settings import CollectorSettings

_LOG = logging.getLogger(__name__)

_MAX_ERROR_BODY = 300


def sms_text(subject: str, body: str) -> str:
    """An SMS has no subject line, so the subject becomes the first line of the text."""
    subject, body = subject.strip(), body.strip()
    if not subject:
        return body
    if not body:
        return subject
    return f"{subject}\n{body}"


class HttpSmsNotifier:
    """The ``"sms"`` channel, speaking the small JSON protocol of ``docs/sms-gateway.md``.

    One ``httpx.Client`` is kept for the notifier's life, so consecutive messages reuse the
    TCP (and TLS) connection; it is safe to call ``send`` from several threads.
    """

    channel = "sms"

    def __init__(
        self, url: str, *, token: str | None, sender: str, timeout_s: float = 10.0
    ) -> None:
        self.url = url
        self.sender = sender
        headers = {"User-Agent": "anbu-collector", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=headers, timeout=timeout_s, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> HttpSmsNotifier:
        """The notifier ``ANBU_SMS_*`` describes; ValueError if no gateway URL is set."""
        if not settings.sms_gateway_url:
            raise ValueError("sms_gateway_url is not set (ANBU_SMS_GATEWAY_URL): no SMS is sent")
        return cls(
            settings.sms_gateway_url,
            token=settings.sms_gateway_token,
            sender=settings.sms_sender,
            timeout_s=settings.sms_timeout_s,
        )

    def request_body(
        self, recipient: str, subject: str, body: str, *, reference: str
    ) -> dict[str, str]:
        """The JSON object posted for one message; ValueError if ``recipient`` is no mobile."""
        return {
            "to": normalise_mobile_number(recipient),
            "from": self.sender,
            "text": sms_text(subject, body),
            "reference": reference,
        }

    def send(self, recipient: str, subject: str, body: str, *, reference: str) -> None:
        try:
            payload = self.request_body(recipient, subject, body, reference=reference)
        except ValueError as e:
            raise NotifyError(str(e), permanent=True) from None
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException as e:
            # The gateway may have accepted it before the timeout; the reference lets it
            # recognise our retry.
            raise NotifyError(f"sms gateway timed out: {type(e).__name__}", False) from e
        except httpx.HTTPError as e:
            raise NotifyError(f"sms gateway unreachable: {type(e).__name__}: {e}", False) from e
        status = response.status_code
        if 200 <= status < 300:
            _LOG.debug(
                "sms accepted by gateway",
                extra={
                    "event": "sms_accepted",
                    "reference": reference,
                    "gateway_id": _gateway_id(response),
                },
            )
            return
        detail = f"sms gateway answered {status}: {_error_text(response)}"
        if status == 429:
            raise NotifyError(detail, permanent=False, retry_after_s=_retry_after_s(response))
        if status == 408 or status >= 500:
            raise NotifyError(detail, permanent=False)
        if 400 <= status < 500:
            raise NotifyError(detail, permanent=True)
        # 1xx/3xx: a misconfigured URL or a proxy in the way; worth another try once fixed.
        raise NotifyError(detail, permanent=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSmsNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _gateway_id(response: httpx.Response) -> str | None:
    data = _json(response)
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"])
    return None


def _error_text(response: httpx.Response) -> str:
    data = _json(response)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text: str = data["error"]
    else:
        text = response.text
    text = " ".join(text.split())
    return text[:_MAX_ERROR_BODY] or "(no body)"


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (it may be a number of seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
