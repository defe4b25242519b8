"""Versioned message schemas for everything that crosses the broker.

Every message carries ``schema_version``, a unique ``message_id`` (for de-duplication: delivery
is at-least-once, handlers make the effect exactly-once), the device's timestamp ``device_ts``
(seconds since the Unix epoch, UTC) and a per-device sequence number ``seq``.

Payloads are compact JSON. Unknown fields are refused (``extra="forbid"``): the privacy promise
that no audio or free transcript leaves a home is enforced by the schema itself, because there is
no field that could carry one.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_config.errors import ContractError
from firmware_config.topics import Channel, Command

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 4096

MessageId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="uuid4 hex")]
Phrase = Annotated[str, Field(min_length=1, max_length=64)]


def new_message_id() -> str:
    """A fresh message id (uuid4, 32 lower-case hex digits)."""
    return uuid.uuid4().hex


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    message_id: MessageId = Field(default_factory=new_message_id)
    device_ts: float = Field(ge=0, description="device clock, seconds since the epoch (UTC)")
    seq: int = Field(ge=0, description="per-device sequence number, increasing")

    def to_payload(self) -> bytes:
        """Compact JSON bytes for the wire."""
        return self.model_dump_json().encode("utf-8")


class State(_Message):
    """Retained device state; ``offline`` is also registered as the MQTT last will."""

    kind: Literal["state"] = "state"
    state: Literal["online", "offline"]
    agent_version: str = Field(default="", max_length=32)


class Heartbeat(_Message):
    """Life signs counted since the previous heartbeat."""

    kind: Literal["heartbeat"] = "heartbeat"
    interval_s: float = Field(ge=0, description="seconds this heartbeat covers")
    motion_count: int = Field(ge=0, description="PIR motion episodes in the interval")
    speech_s: float = Field(ge=0, description="seconds of voice activity in the interval")
    wake_word_count: int = Field(ge=0)
    interactions: int = Field(ge=0, description="recognised phrases of any kind")
    button_presses: int = Field(default=0, ge=0)
    uptime_s: float = Field(ge=0)
    audio_overruns: int = Field(ge=0, description="audio blocks dropped since start")
    outbox_depth: int = Field(ge=0, description="events waiting on disk for the broker")
    agent_version: str = Field(max_length=32)
    coalesced: int = Field(default=0, ge=0, description="older heartbeats merged into this one")


class SosEvent(_Message):
    """The resident asked for help."""

    kind: Literal["sos"] = "sos"
    source: Literal["button", "voice"]
    phrase: Phrase | None = Field(default=None, description="the matched phrase, voice only")
    language: Literal["ko", "en"] | None = None
    test: bool = Field(
        default=False,
        description="a test (anbu agent verify): recorded and acknowledged, nobody is dispatched",
    )


class SosCancel(_Message):
    """The resident withdrew an SOS within the cancel window."""

    kind: Literal["sos_cancel"] = "sos_cancel"
    sos_id: MessageId
    source: Literal["button", "voice"]
    phrase: Phrase | None = None


class MotionEvent(_Message):
    """A PIR motion episode started."""

    kind: Literal["motion"] = "motion"


DeviceMessage = State | Heartbeat | SosEvent | SosCancel | MotionEvent

_BY_CHANNEL: dict[Channel, type[_Message]] = {
    Channel.STATE: State,
    Channel.HEARTBEAT: Heartbeat,
    Channel.SOS: SosEvent,
    Channel.SOS_CANCEL: SosCancel,
    Channel.MOTION: MotionEvent,
}


class SosAck(_Message):
    """Collector -> device: the SOS is stored and a caregiver is being dispatched."""

    kind: Literal["sos_ack"] = "sos_ack"
    sos_id: MessageId
    dispatch_id: int = Field(ge=1)


class CancelAck(_Message):
    """Collector -> device: the cancel is stored and the caregiver told."""

    kind: Literal["cancel_ack"] = "cancel_ack"
    sos_id: MessageId
    dispatch_id: int | None = None


CommandMessage = SosAck | CancelAck

_BY_COMMAND: dict[Command, type[_Message]] = {
    Command.SOS_ACK: SosAck,
    Command.CANCEL_ACK: CancelAck,
}


def _decode(model: type[_Message], payload: bytes, where: str) -> _Message:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"{where}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{where}: payload is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{where}: payload must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ContractError(f"{where}: {problems}") from exc


def decode_device_message(channel: Channel, payload: bytes) -> DeviceMessage:
    """Validate a payload received on a device ``channel``; raise :class:`ContractError`."""
    message = _decode(_BY_CHANNEL[channel], payload, channel.value)
    return message  # type: ignore[return-value]


def decode_command(command: Command, payload: bytes) -> CommandMessage:
    """Validate a command payload received by a device; raise :class:`ContractError`."""
    message = _decode(_BY_COMMAND[command], payload, f"cmd/{command.value}")
    return message  # type: ignore[return-value]


def channel_of(message: DeviceMessage) -> Channel:
    """The channel a device message is published on."""
    for channel, model in _BY_CHANNEL.items():
        if type(message) is model:
            return channel
    raise ContractError(f"{type(message).__name__} is not a device message")


def command_of(message: CommandMessage) -> Command:
    """The command topic suffix a command message is sent on."""
    for command, model in _BY_COMMAND.items():
        if type(message) is model:
            return command
    raise ContractError(f"{type(message).__name__} is not a command")
