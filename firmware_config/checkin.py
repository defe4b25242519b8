"""Check-in: the collector asks a quiet home's speaker "are you all right?" before dispatching.

Topics (part of the layout in :mod:`firmware_config.topics`, below the device's ``BASE``)::

    BASE/cmd/checkin              collector -> device   CheckinRequest   (Command.CHECKIN)
    BASE/event/checkin_answer     device -> collector   CheckinAnswer    (Channel.CHECKIN_ANSWER)

Flow: the device plays the prompt named by ``prompt`` (its text lives in the phrase files),
listens for ``listen_s`` seconds for one of the check-in answers (네 / 응 / 괜찮아; yes /
I'm fine), and publishes one :class:`CheckinAnswer` carrying the request's ``checkin_id``:
``answered`` true with the matched phrase, or false when nothing was recognised. A request
that reaches the device after ``expires_ts`` (delivered late after a reconnect) is answered
with ``answered=false, expired=true`` and never played: nobody should be asked hours later.

The schemas live with every other message in :mod:`firmware_config.messages` (same rules:
``schema_version``, ``message_id``, ``device_ts``, ``seq``, bounded fields, unknown fields
refused, so no transcript or audio can ride along). This module names the check-in's pieces
for the silence flow and the agent.
"""

from __future__ import annotations

from firmware_config.errors import ContractError
from firmware_config.messages import (
    CheckinAnswer,
    CheckinRequest,
    decode_command,
    decode_device_message,
)
from firmware_config.topics import (
    Channel,
    Command,
    DeviceAddress,
    checkin_answer_subscription,
    parse,
)

__all__ = [
    "CHECKIN_ANSWER",
    "CHECKIN_COMMAND",
    "CheckinAnswer",
    "CheckinRequest",
    "checkin_answer_subscription",
    "checkin_answer_topic",
    "checkin_command_topic",
    "decode_checkin_answer",
    "decode_checkin_request",
    "parse_checkin_topic",
]

CHECKIN_COMMAND = f"cmd/{Command.CHECKIN.value}"
CHECKIN_ANSWER = Channel.CHECKIN_ANSWER.value


def decode_checkin_request(payload: bytes) -> CheckinRequest:
    """Validate a ``cmd/checkin`` payload; raise :class:`ContractError`."""
    message = decode_command(Command.CHECKIN, payload)
    assert isinstance(message, CheckinRequest)  # noqa: S101 - decode returns the model asked for
    return message


def decode_checkin_answer(payload: bytes) -> CheckinAnswer:
    """Validate an ``event/checkin_answer`` payload; raise :class:`ContractError`."""
    message = decode_device_message(Channel.CHECKIN_ANSWER, payload)
    assert isinstance(message, CheckinAnswer)  # noqa: S101
    return message


def checkin_command_topic(address: DeviceAddress) -> str:
    """Where the collector sends a check-in request for this device."""
    return address.command_topic(Command.CHECKIN)


def checkin_answer_topic(address: DeviceAddress) -> str:
    """Where this device publishes its check-in answer."""
    return address.topic(Channel.CHECKIN_ANSWER)


def parse_checkin_topic(topic: str) -> tuple[DeviceAddress, str]:
    """``(address, CHECKIN_COMMAND | CHECKIN_ANSWER)``; raise :class:`ContractError` otherwise."""
    parsed = parse(topic)
    if parsed.command is Command.CHECKIN:
        return parsed.address, CHECKIN_COMMAND
    if parsed.channel is Channel.CHECKIN_ANSWER:
        return parsed.address, CHECKIN_ANSWER
    raise ContractError(f"topic {topic!r} is not a check-in topic")
