"""Check-in: the collector asks a quiet home's speaker "are you all right?" before dispatching.

Topics (below the device's ``BASE`` of :mod:`firmware_config.topics`)::

    BASE/cmd/checkin              collector -> device   CheckinRequest
    BASE/event/checkin_answer     device -> collector   CheckinAnswer

Flow: the device plays the prompt named by ``prompt`` (its text lives in the phrase files),
listens for ``listen_s`` seconds for one of the check-in answers (네 / 응 / 괜찮아; yes /
I'm fine), and publishes one :class:`CheckinAnswer` carrying the request's ``checkin_id``:
``answered`` true with the matched phrase, or false when nothing was recognised. A request
that reaches the device after ``expires_ts`` (delivered late after a reconnect) is answered
with ``answered=false, expired=true`` and never played: nobody should be asked hours later.

Like every message here, both carry ``schema_version``, ``message_id``, the sender's
timestamp ``device_ts`` and ``seq``; unknown fields are refused, so no transcript or audio can
ride along (only a phrase from the fixed answer set).

These topics are not in ``topics.Channel``/``topics.Command`` yet: this module builds and
parses them itself, so that older ingest code never sees a channel it has no schema for.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from firmware_config.errors import ContractError
from firmware_config.messages import (
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    MessageId,
    nesting_depth,
    new_message_id,
)
from firmware_config.topics import COLLECTOR_SHARE_GROUP, PREFIX, DeviceAddress

CHECKIN_COMMAND = "cmd/checkin"
CHECKIN_ANSWER = "event/checkin_answer"

AnswerPhrase = Annotated[str, Field(min_length=1, max_length=32)]


class _CheckinMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    message_id: MessageId = Field(default_factory=new_message_id)
    device_ts: float = Field(ge=0, description="sender's clock, seconds since the epoch (UTC)")
    seq: int = Field(ge=0)

    def to_payload(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class CheckinRequest(_CheckinMessage):
    """Collector -> device: play the check-in prompt and listen for an answer."""

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
    expires_ts: float = Field(ge=0, description="do not play after this (seconds since epoch)")

    @model_validator(mode="after")
    def _expires_after_sending(self) -> CheckinRequest:
        if self.expires_ts < self.device_ts:
            raise ValueError("expires_ts must not be before device_ts")
        return self


class CheckinAnswer(_CheckinMessage):
    """Device -> collector: what the resident said, or that nobody answered."""

    kind: Literal["checkin_answer"] = "checkin_answer"
    checkin_id: MessageId
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


def _decode(model: type[_CheckinMessage], payload: bytes, where: str) -> _CheckinMessage:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"{where}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if nesting_depth(payload) > MAX_NESTING:  # before the parser can recurse
        raise ContractError(f"{where}: payload nests deeper than {MAX_NESTING} levels")
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


def decode_checkin_request(payload: bytes) -> CheckinRequest:
    """Validate a ``cmd/checkin`` payload; raise :class:`ContractError`."""
    message = _decode(CheckinRequest, payload, CHECKIN_COMMAND)
    assert isinstance(message, CheckinRequest)  # noqa: S101 - _decode returns the model asked for
    return message


def decode_checkin_answer(payload: bytes) -> CheckinAnswer:
    """Validate an ``event/checkin_answer`` payload; raise :class:`ContractError`."""
    message = _decode(CheckinAnswer, payload, CHECKIN_ANSWER)
    assert isinstance(message, CheckinAnswer)  # noqa: S101
    return message


def checkin_command_topic(address: DeviceAddress) -> str:
    """Where the collector sends a check-in request for this device."""
    return f"{address.base}/{CHECKIN_COMMAND}"


def checkin_answer_topic(address: DeviceAddress) -> str:
    """Where this device publishes its check-in answer."""
    return f"{address.base}/{CHECKIN_ANSWER}"


def checkin_answer_subscription(share_group: str = COLLECTOR_SHARE_GROUP) -> str:
    """The collectors' shared subscription for every device's answers."""
    return f"$share/{share_group}/{PREFIX}/+/+/+/{CHECKIN_ANSWER}"


def parse_checkin_topic(topic: str) -> tuple[DeviceAddress, str]:
    """``(address, CHECKIN_COMMAND | CHECKIN_ANSWER)``; raise :class:`ContractError` otherwise."""
    parts = topic.split("/")
    if len(parts) == 7 and f"{parts[0]}/{parts[1]}" == PREFIX:
        suffix = f"{parts[5]}/{parts[6]}"
        if suffix in (CHECKIN_COMMAND, CHECKIN_ANSWER):
            return DeviceAddress(parts[2], parts[3], parts[4]), suffix
    raise ContractError(f"topic {topic!r} is not a check-in topic")
