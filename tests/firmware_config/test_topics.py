import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_config import ContractError
from firmware_config.topics import (
    Channel,
    Command,
    DeviceAddress,
    _parse_parts,
    collector_subscriptions,
    parse,
)

ADDR = DeviceAddress("seodaemun", "h0001", "d0001")


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_round_trips(channel: Channel) -> None:
    parsed = parse(ADDR.topic(channel))
    assert parsed.address == ADDR
    assert parsed.channel is channel
    assert parsed.command is None


@pytest.mark.parametrize("command", list(Command))
def test_every_command_round_trips(command: Command) -> None:
    parsed = parse(ADDR.command_topic(command))
    assert parsed.address == ADDR
    assert parsed.command is command
    assert parsed.channel is None


def test_topic_layout_is_versioned_per_district_household_device() -> None:
    assert ADDR.topic(Channel.SOS) == "anbu/v1/seodaemun/h0001/d0001/event/sos"
    assert ADDR.command_filter == "anbu/v1/seodaemun/h0001/d0001/cmd/+"


@pytest.mark.parametrize(
    "topic",
    [
        "anbu/v2/seodaemun/h0001/d0001/heartbeat",
        "other/v1/seodaemun/h0001/d0001/heartbeat",
        "anbu/v1/seodaemun/h0001/d0001/audio",
        "anbu/v1/seodaemun/h0001/d0001/event/sos/extra",
        "anbu/v1/seodaemun/h0001/heartbeat",
        "anbu/v1/Seodaemun/h0001/d0001/heartbeat",
        "anbu/v1/seodaemun/+/d0001/heartbeat",
        "anbu/v1/seodaemun/h0001/d0001/cmd/reboot",
        "",
    ],
)
def test_topics_outside_the_layout_are_refused(topic: str) -> None:
    with pytest.raises(ContractError):
        parse(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "#", "+", "UPPER", "-lead", "x" * 65, "한글"])
def test_identifiers_cannot_break_the_layout(bad: str) -> None:
    with pytest.raises(ContractError, match="not a valid identifier"):
        DeviceAddress("seodaemun", bad, "d1")


def test_collector_subscribes_shared_except_retained_state() -> None:
    subs = collector_subscriptions("g")
    assert "anbu/v1/+/+/+/state" in subs
    assert "$share/g/anbu/v1/+/+/+/event/sos" in subs
    assert not any(s.startswith("$share") and s.endswith("/state") for s in subs)


_PIECES = st.sampled_from(
    [
        "anbu",
        "v1",
        "v2",
        "a",
        "seoul-sdm",
        "h000123",
        "d_1",
        "A",
        "-x",
        "",
        "+",
        "#",
        "cmd",
        "event",
        "sos",
        "sos_ack",
        "cancel_ack",
        "heartbeat",
        "state",
        "motion",
        "x" * 65,
        "é",
    ]
)


@given(st.lists(_PIECES, min_size=0, max_size=8), st.sampled_from(["", "\n", "/"]))
@example(["a", "h000123", "d_1", "heartbeat"], "")
@example(["a", "h000123", "d_1", "event", "sos"], "")
@example(["a", "h000123", "d_1", "cmd", "sos_ack"], "")
@example(["a", "h000123", "d_1", "heartbeat"], "\n")
@example(["A", "h000123", "d_1", "heartbeat"], "")
def test_the_fast_path_answers_as_the_piece_by_piece_parse(pieces: list[str], tail: str) -> None:
    """``parse`` matches the usual topic with one regular expression; whatever it gives must be
    what taking the topic apart piece by piece gives, and it must refuse what that refuses."""
    topic = "/".join(["anbu", "v1", *pieces[:3], *pieces[3:]]) + tail
    try:
        expected = _parse_parts(topic)
    except ContractError:
        with pytest.raises(ContractError):
            parse(topic)
        return
    assert parse(topic) == expected
