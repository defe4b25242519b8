import pytest

from firmware_config import ContractError
from firmware_config.topics import (
    Channel,
    Command,
    DeviceAddress,
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
