import json

import pytest

from firmware_config import ContractError
from firmware_config.messages import (
    MAX_PAYLOAD_BYTES,
    CancelAck,
    Heartbeat,
    MotionEvent,
    SosAck,
    SosCancel,
    SosEvent,
    State,
    channel_of,
    command_of,
    decode_command,
    decode_device_message,
)
from firmware_config.topics import Channel, Command

HB = dict(
    device_ts=1_700_000_000.5,
    seq=7,
    interval_s=60,
    motion_count=2,
    speech_s=3.5,
    wake_word_count=1,
    interactions=1,
    uptime_s=120,
    audio_overruns=0,
    outbox_depth=0,
    agent_version="0.1.0",
)

EXAMPLES = [
    State(device_ts=1, seq=1, state="online", agent_version="0.1.0"),
    Heartbeat(**HB),  # type: ignore[arg-type]
    SosEvent(device_ts=1, seq=2, source="voice", phrase="살려줘", language="ko"),
    SosCancel(device_ts=1, seq=3, sos_id="a" * 32, source="button"),
    MotionEvent(device_ts=1, seq=4),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_device_messages_round_trip(message: object) -> None:
    channel = channel_of(message)  # type: ignore[arg-type]
    decoded = decode_device_message(channel, message.to_payload())  # type: ignore[attr-defined]
    assert decoded == message


def test_every_message_carries_version_id_timestamp_and_sequence() -> None:
    for message in EXAMPLES:
        data = json.loads(message.to_payload())
        assert data["schema_version"] == 1
        assert len(data["message_id"]) == 32
        assert "device_ts" in data and "seq" in data


def test_message_ids_are_unique() -> None:
    ids = {MotionEvent(device_ts=1, seq=i).message_id for i in range(1000)}
    assert len(ids) == 1000


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps({**HB, "schema_version": 2}).encode(), "schema_version"),
        (json.dumps({**HB, "audio": "AAAA"}).encode(), "audio: Extra inputs"),
        (json.dumps({**HB, "transcript": "hello"}).encode(), "transcript"),
        (json.dumps({**HB, "motion_count": -1}).encode(), "motion_count"),
        (json.dumps({k: v for k, v in HB.items() if k != "seq"}).encode(), "seq: Field required"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "exceeds"),
    ],
)
def test_bad_payloads_are_refused_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode_device_message(Channel.HEARTBEAT, payload)


def test_sos_phrase_is_bounded_so_no_free_transcript_fits() -> None:
    with pytest.raises(ContractError, match="phrase"):
        decode_device_message(
            Channel.SOS,
            SosEvent(device_ts=1, seq=1, source="voice")
            .to_payload()
            .replace(b'"phrase":null', b'"phrase":"' + b"x" * 65 + b'"'),
        )


def test_commands_round_trip() -> None:
    ack = SosAck(device_ts=1, seq=0, sos_id="b" * 32, dispatch_id=5)
    assert decode_command(command_of(ack), ack.to_payload()) == ack
    cancel = CancelAck(device_ts=1, seq=0, sos_id="b" * 32)
    assert command_of(cancel) is Command.CANCEL_ACK
    with pytest.raises(ContractError):
        decode_command(Command.SOS_ACK, cancel.to_payload())
