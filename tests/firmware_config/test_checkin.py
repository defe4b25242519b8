"""The check-in contract: request and answer schemas and their topics."""

from __future__ import annotations

import pytest

from firmware_config import ContractError
from firmware_config.checkin import (
    CHECKIN_ANSWER,
    CHECKIN_COMMAND,
    CheckinAnswer,
    CheckinRequest,
    checkin_answer_subscription,
    checkin_answer_topic,
    checkin_command_topic,
    decode_checkin_answer,
    decode_checkin_request,
    parse_checkin_topic,
)
from firmware_config.messages import command_of, decode_command, new_message_id
from firmware_config.topics import (
    Channel,
    Command,
    DeviceAddress,
    collector_bulk_subscriptions,
    collector_event_subscriptions,
    collector_subscriptions,
    parse,
)

ADDR = DeviceAddress("seodaemun", "h0001", "d0001")


def test_request_and_answer_round_trip() -> None:
    checkin_id = new_message_id()
    request = CheckinRequest(device_ts=100, seq=1, checkin_id=checkin_id, expires_ts=400)
    assert decode_checkin_request(request.to_payload()) == request
    answer = CheckinAnswer(
        device_ts=130,
        seq=9,
        checkin_id=checkin_id,
        answered=True,
        phrase="괜찮아",
        language="ko",
        heard_after_s=4.2,
    )
    assert decode_checkin_answer(answer.to_payload()) == answer


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"{", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"device_ts": 1, "seq": 1, "checkin_id": "x", "expires_ts": 2}', "checkin_id"),
        (
            b'{"device_ts": 5, "seq": 1, "checkin_id": "' + b"a" * 32 + b'", "expires_ts": 2}',
            "expires_ts must not be before device_ts",
        ),
        (
            b'{"device_ts": 1, "seq": 1, "checkin_id": "'
            + b"a" * 32
            + b'", "expires_ts": 2, "listen_s": 2}',
            "listen_s",
        ),
    ],
)
def test_bad_requests_are_refused_with_the_field(payload: bytes, problem: str) -> None:
    with pytest.raises(ContractError, match=problem):
        decode_checkin_request(payload)


def test_answers_cannot_carry_a_transcript_or_contradict_themselves() -> None:
    base = {"device_ts": 1, "seq": 1, "checkin_id": "a" * 32}
    with pytest.raises(ContractError, match="transcript"):
        decode_checkin_answer(
            CheckinAnswer(**base, answered=False).to_payload()[:-1] + b',"transcript":"hi"}'  # type: ignore[arg-type]
        )
    with pytest.raises(ContractError, match="needs its phrase"):
        decode_checkin_answer(
            b'{"device_ts":1,"seq":1,"checkin_id":"' + b"a" * 32 + b'","answered":true}'
        )
    with pytest.raises(ContractError, match="no answer carries no phrase"):
        decode_checkin_answer(
            b'{"device_ts":1,"seq":1,"checkin_id":"'
            + b"a" * 32
            + b'","answered":false,"phrase":"yes"}'
        )


def test_topics_sit_in_the_device_subtree_and_parse_back() -> None:
    command = checkin_command_topic(ADDR)
    answer = checkin_answer_topic(ADDR)
    assert command == "anbu/v1/seodaemun/h0001/d0001/cmd/checkin"
    assert answer == "anbu/v1/seodaemun/h0001/d0001/event/checkin_answer"
    assert parse_checkin_topic(command) == (ADDR, CHECKIN_COMMAND)
    assert parse_checkin_topic(answer) == (ADDR, CHECKIN_ANSWER)
    assert checkin_answer_subscription() == (
        "$share/anbu-collectors/anbu/v1/+/+/+/event/checkin_answer"
    )
    # The device's command filter (cmd/+) covers the request.
    assert command.startswith(ADDR.command_filter[:-1])
    for bad in (
        "anbu/v1/seodaemun/h0001/d0001/cmd/sos_ack",
        "anbu/v2/s/h/d/cmd/checkin",
        "anbu/v1/S/h/d/cmd/checkin",
    ):
        with pytest.raises(ContractError):
            parse_checkin_topic(bad)


def test_check_in_topics_are_part_of_the_one_layout() -> None:
    """The request is a Command and the answer a Channel, so every parser and the ACL know them."""
    assert parse(checkin_command_topic(ADDR)).command is Command.CHECKIN
    assert parse(checkin_answer_topic(ADDR)).channel is Channel.CHECKIN_ANSWER
    request = CheckinRequest(device_ts=100, seq=1, checkin_id=new_message_id(), expires_ts=400)
    assert decode_command(Command.CHECKIN, request.to_payload()) == request
    assert command_of(request) is Command.CHECKIN


def test_the_ingest_lanes_do_not_subscribe_to_answers_the_silence_flow_takes() -> None:
    lanes = [*collector_event_subscriptions("g"), *collector_bulk_subscriptions("g")]
    assert not any(s.endswith(CHECKIN_ANSWER) for s in lanes)
    assert not any(s.endswith(CHECKIN_ANSWER) for s in collector_subscriptions("g"))


def test_a_request_without_its_own_message_id_is_refused() -> None:
    """As for every command: an id made up at decoding would defeat de-duplication."""
    payload = b'{"device_ts": 1, "seq": 1, "checkin_id": "' + b"a" * 32 + b'", "expires_ts": 2}'
    with pytest.raises(ContractError, match="message_id"):
        decode_checkin_request(payload)


@pytest.mark.parametrize("payload", [b"[" * 2048, b'{"a":' * 600 + b"1" + b"}" * 600])
def test_a_deeply_nested_answer_is_refused_before_parsing(payload: bytes) -> None:
    with pytest.raises(ContractError, match="nests deeper"):
        decode_checkin_answer(payload)
