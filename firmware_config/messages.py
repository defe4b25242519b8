"""Versioned message schemas for everything that crosses the broker.

Every message carries ``schema_version``, a unique ``message_id`` (for de-duplication: delivery
is at-least-once, handlers make the effect exactly-once), the device's timestamp ``device_ts``
(seconds since the Unix epoch, UTC) and a per-device sequence number ``seq``.

Payloads are compact JSON. Unknown fields are refused (``extra="forbid"``): the privacy promise
that no audio or free transcript leaves a home is enforced by the schema itself, because there is
no field that could carry one.

Every field is bounded to what both databases store (PostgreSQL ``integer`` and ``timestamptz``,
SQLite ``INTEGER``): integers fit in 32 bits, floats are finite, timestamps fall before 2100, text
has no control characters. The decoder refuses pathological JSON (too large, too deeply nested)
before parsing it, and a message received from the wire must carry its own ``message_id``: an id
made up at decoding would differ at every redelivery and defeat de-duplication.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from firmware_config.errors import ContractError
from firmware_config.topics import Channel, Command

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 4096
MAX_NESTING = 4
"""Device messages are flat objects; anything nested deeper is refused before it is parsed."""

INT32_MAX = 2**31 - 1
"""Largest integer both databases store in an ``integer`` column."""
MAX_DEVICE_TS = 4_102_444_800.0
"""2100-01-01T00:00:00Z: a device clock beyond this is not a clock."""
MAX_DURATION_S = 10 * 365 * 24 * 3600.0
"""Ten years: the longest uptime or interval a message may claim."""

_NO_CONTROL = r"^[^\u0000-\u001f\u007f]*$"
MessageId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="uuid4 hex")]
Phrase = Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_CONTROL)]
AnswerPhrase = Annotated[str, Field(min_length=1, max_length=32, pattern=_NO_CONTROL)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_S)]
AgentVersion = Annotated[str, Field(max_length=32, pattern=_NO_CONTROL)]

"""Validation context of a payload decoded from the wire (see ``_Message._wire_needs_id``)."""


def new_message_id() -> str:
    """A fresh message id (uuid4, 32 lower-case hex digits)."""
    return uuid.uuid4().hex


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Literal[1] = 1
    message_id: MessageId = Field(default_factory=new_message_id)
    device_ts: float = Field(
        ge=0, lt=MAX_DEVICE_TS, description="device clock, seconds since the epoch (UTC)"
    )
    seq: Count = Field(description="per-device sequence number, increasing")

    def to_payload(self) -> bytes:
        """Compact JSON bytes for the wire."""
        return self.model_dump_json().encode("utf-8")


class State(_Message):
    """Retained device state; ``offline`` is also registered as the MQTT last will."""

    kind: Literal["state"] = "state"
    state: Literal["online", "offline"]
    agent_version: AgentVersion = ""


class Heartbeat(_Message):
    """Life signs counted since the previous heartbeat."""

    kind: Literal["heartbeat"] = "heartbeat"
    interval_s: Seconds = Field(description="seconds this heartbeat covers")
    motion_count: Count = Field(description="PIR motion episodes in the interval")
    speech_s: Seconds = Field(description="seconds of voice activity in the interval")
    wake_word_count: Count
    interactions: Count = Field(description="recognised phrases of any kind")
    button_presses: Count = 0
    uptime_s: Seconds
    audio_overruns: Count = Field(description="audio blocks dropped since start")
    outbox_depth: Count = Field(description="events waiting on disk for the broker")
    agent_version: AgentVersion
    coalesced: Count = Field(default=0, description="older heartbeats merged into this one")


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


class CallRequest(_Message):
    """The resident asked by voice for a call from the welfare office: not an emergency, it
    is answered within a working day."""

    kind: Literal["request"] = "request"
    source: Literal["voice"] = "voice"
    phrase: Phrase | None = Field(default=None, description="the matched request phrase")
    language: Literal["ko", "en"] | None = None


class CheckinAnswer(_Message):
    """Device -> collector: what the resident said to a :class:`CheckinRequest`, or that nobody
    answered. Only a phrase from the fixed answer set can ride along, never a transcript."""

    kind: Literal["checkin_answer"] = "checkin_answer"
    checkin_id: MessageId = Field(description="the request's checkin_id")
    answered: bool
    phrase: AnswerPhrase | None = Field(default=None, description="the matched answer phrase")
    language: Literal["ko", "en"] | None = None
    heard_after_s: float | None = Field(default=None, ge=0, le=3600)
    expired: bool = Field(default=False, description="arrived after expires_ts; not played")

    @model_validator(mode="after")
    def _consistent(self) -> CheckinAnswer:
        if self.answered and (self.phrase is None or self.expired):
            raise ValueError("an answer needs its phrase and cannot be expired")
        if not self.answered and self.phrase is not None:
            raise ValueError("no answer carries no phrase")
        return self


DeviceMessage = State | Heartbeat | SosEvent | SosCancel | MotionEvent | CallRequest | CheckinAnswer

_BY_CHANNEL: dict[Channel, type[_Message]] = {
    Channel.STATE: State,
    Channel.HEARTBEAT: Heartbeat,
    Channel.SOS: SosEvent,
    Channel.SOS_CANCEL: SosCancel,
    Channel.MOTION: MotionEvent,
    Channel.REQUEST: CallRequest,
    Channel.CHECKIN_ANSWER: CheckinAnswer,
}


class SosAck(_Message):
    """Collector -> device: the SOS is stored and a caregiver is being dispatched."""

    kind: Literal["sos_ack"] = "sos_ack"
    sos_id: MessageId
    dispatch_id: int = Field(ge=1, le=INT32_MAX)


class CancelAck(_Message):
    """Collector -> device: the cancel is stored and the caregiver told."""

    kind: Literal["cancel_ack"] = "cancel_ack"
    sos_id: MessageId
    dispatch_id: int | None = Field(default=None, ge=1, le=INT32_MAX)


class CheckinRequest(_Message):
    """Collector -> device: a quiet home; play the check-in prompt and listen for an answer.

    A request that reaches the device after ``expires_ts`` (delivered late after a reconnect)
    is answered with ``answered=false, expired=true`` and never played: nobody should be asked
    hours later.
    """

    kind: Literal["checkin"] = "checkin"
    checkin_id: MessageId = Field(description="echoed in the answer; one per silence flag")
    prompt: Literal["silence"] = Field(
        default="silence", description="which prompt of the phrase file to play"
    )
    language: Literal["ko", "en"] | None = Field(
        default=None, description="None: the device's configured language"
    )
    listen_s: float = Field(default=60.0, ge=5, le=600, description="seconds to listen")
    repeats: int = Field(default=2, ge=1, le=5, description="times the prompt is played")
    expires_ts: float = Field(
        ge=0, lt=MAX_DEVICE_TS, description="do not play after this (seconds since epoch)"
    )

    @model_validator(mode="after")
    def _expires_after_sending(self) -> CheckinRequest:
        if self.expires_ts < self.device_ts:
            raise ValueError("expires_ts must not be before device_ts")
        return self


CommandMessage = SosAck | CancelAck | CheckinRequest

_BY_COMMAND: dict[Command, type[_Message]] = {
    Command.SOS_ACK: SosAck,
    Command.CANCEL_ACK: CancelAck,
    Command.CHECKIN: CheckinRequest,
}


def nesting_depth(payload: bytes) -> int:
    """How deeply ``[``/``{`` nest in a JSON text, ignoring brackets inside strings.

    Cheap for ordinary payloads: a text with few brackets cannot nest deeper than their count.
    """
    opened = payload.count(b"[") + payload.count(b"{")
    if opened <= MAX_NESTING:
        return opened
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _decode(model: type[_Message], payload: bytes, where: str) -> _Message:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"{where}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if nesting_depth(payload) > MAX_NESTING:
        raise ContractError(f"{where}: payload nests deeper than {MAX_NESTING} levels")
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise ContractError(f"{where}: payload is not JSON ({errors[0]['msg']})") from exc
        if errors and errors[0]["type"] == "model_type":
            raise ContractError(f"{where}: payload must be a JSON object") from exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in errors[:5]
        )
        raise ContractError(f"{where}: {problems}"[:500]) from exc
    # Made in code, a message gets a fresh id; received, it must bring the one it was sent with.
    if "message_id" not in message.model_fields_set:
        raise ContractError(f"{where}: message_id: Field required")
    return message


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
