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


def _hb(**changes: object) -> bytes:
    return json.dumps({**HB, "message_id": "c" * 32, **changes}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # values the schema once accepted but neither database can store
        (_hb(device_ts=1e12), "device_ts"),
        (b'{"device_ts": Infinity}', "device_ts|not JSON"),
        (_hb(device_ts=float("nan")).replace(b"NaN", b"NaN"), "device_ts|not JSON"),
        (_hb(seq=2**31), "seq"),
        (_hb(motion_count=2**63), "motion_count"),
        (_hb(speech_s=1e300), "speech_s"),
        (_hb(agent_version="0.1\x00"), "agent_version"),
        (_hb(agent_version="0.1\n"), "agent_version"),
        # pathological JSON is refused before it is parsed
        (b"[" * 2048, "nests deeper"),
        (b'{"a":' * 600 + b"1" + b"}" * 600, "nests deeper"),
        # an id made up at decoding would defeat de-duplication
        (json.dumps(HB).encode(), "message_id: Field required"),
    ],
)
def test_values_outside_what_the_store_holds_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode_device_message(Channel.HEARTBEAT, payload)


def test_sos_phrase_with_a_control_character_is_refused() -> None:
    payload = (
        SosEvent(device_ts=1, seq=1, source="voice", phrase="살려줘")
        .to_payload()
        .replace("살려줘".encode(), b"\\u0000")
    )
    with pytest.raises(ContractError, match="phrase"):
        decode_device_message(Channel.SOS, payload)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    from firmware_config.messages import nesting_depth

    assert nesting_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[\\"]]]]"}') == 1
    assert nesting_depth(b"[[[]]]") == 3
    assert nesting_depth(b"[" * 2048) == 2048


def test_the_largest_stored_values_are_accepted() -> None:
    decoded = decode_device_message(Channel.HEARTBEAT, _hb(seq=2**31 - 1, device_ts=4.1e9))
    assert decoded.seq == 2**31 - 1
