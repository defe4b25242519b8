"""MQTT topic layout: built and parsed here and nowhere else.

Layout (version 1)::

    BASE = anbu/v1/{district}/{household}/{device}
    BASE/state              retained online/offline; the broker publishes offline as the last will
    BASE/heartbeat          periodic life signs
    BASE/event/sos          the resident asked for help
    BASE/event/sos_cancel   the resident withdrew an SOS
    BASE/event/motion       a motion episode (motion is also counted in heartbeats)
    BASE/event/request      the resident asked for a call from the welfare office (not urgent)
    BASE/event/checkin_answer  the resident's answer (or none) to a check-in
    BASE/cmd/{name}         collector -> device: sos_ack, cancel_ack, checkin

Every topic of the layout is a :class:`Channel` (device -> collector) or a :class:`Command`
(collector -> device); the broker's access rules (:mod:`firmware_config.acl`) and every
subscription list below are derived from them.

Identifiers are lower-case ASCII letters, digits, ``-`` and ``_`` (1-64 characters), so they can
never contain the MQTT wildcards ``+``/``#`` or a ``/`` that would shift the layout.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from firmware_config.errors import ContractError

ROOT = "anbu"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

#: Shared-subscription group the collectors join, so several can split the load.
COLLECTOR_SHARE_GROUP = "anbu-collectors"


class Channel(enum.StrEnum):
    """What a device-originated topic carries."""

    STATE = "state"
    """Retained ``online``/``offline``; the broker publishes ``offline`` as the last will."""
    HEARTBEAT = "heartbeat"
    """Periodic counters: motion, speech seconds, wake words, outbox depth..."""
    SOS = "event/sos"
    """An SOS from the button or a spoken SOS phrase."""
    SOS_CANCEL = "event/sos_cancel"
    """The resident cancelled an SOS within the cancel window."""
    MOTION = "event/motion"
    """A PIR motion episode started."""
    REQUEST = "event/request"
    """The resident asked by voice for a call from the welfare office (non-urgent)."""
    CHECKIN_ANSWER = "event/checkin_answer"
    """What the resident said to a :attr:`Command.CHECKIN`, or that nobody answered. Only the
    collectors' silence flow reads it, on a subscription of its own
    (:func:`checkin_answer_subscription`), never the ingest lanes."""


class Command(enum.StrEnum):
    """Commands the collector sends to a device on ``.../cmd/{name}``."""

    SOS_ACK = "sos_ack"
    """The collector stored the SOS and started a dispatch; the device tells the resident."""
    CANCEL_ACK = "cancel_ack"
    """The collector received the resident's cancel."""
    CHECKIN = "checkin"
    """A quiet home: the device asks the resident "are you all right?" and publishes a
    :attr:`Channel.CHECKIN_ANSWER` (schemas in :mod:`firmware_config.messages`)."""


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Where a device sits: district, household and device identifiers."""

    district: str
    household: str
    device: str

    def __post_init__(self) -> None:
        for name in ("district", "household", "device"):
            validate_id(name, getattr(self, name))

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.district}/{self.household}/{self.device}"

    def topic(self, channel: Channel) -> str:
        """The topic this device publishes ``channel`` on."""
        return f"{self.base}/{channel.value}"

    def command_topic(self, command: Command) -> str:
        """The topic the collector sends ``command`` to this device on."""
        return f"{self.base}/cmd/{command.value}"

    @property
    def command_filter(self) -> str:
        """The filter a device subscribes to for all of its commands."""
        return f"{self.base}/cmd/+"


def validate_id(field: str, value: str) -> str:
    """Return ``value`` if it is a valid identifier, else raise naming the field."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ContractError(
            f"{field}={value!r} is not a valid identifier "
            "(1-64 of a-z, 0-9, '-', '_', starting with a letter or digit)"
        )
    return value


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A device topic taken apart."""

    address: DeviceAddress
    channel: Channel | None
    command: Command | None


_CHANNELS = {c.value: c for c in Channel}
_COMMANDS = {c.value: c for c in Command}


_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
_CHANNEL_ALT = "|".join(re.escape(c.value) for c in Channel)
_COMMAND_ALT = "|".join(re.escape(c.value) for c in Command)
_DEVICE_TOPIC_RE = re.compile(
    rf"{re.escape(PREFIX)}/({_ID})/({_ID})/({_ID})/(?:({_CHANNEL_ALT})|cmd/({_COMMAND_ALT}))"
)


def _checked_address(district: str, household: str, device: str) -> DeviceAddress:
    """A :class:`DeviceAddress` from identifiers ``_DEVICE_TOPIC_RE`` has already validated."""
    address = object.__new__(DeviceAddress)
    object.__setattr__(address, "district", district)
    object.__setattr__(address, "household", household)
    object.__setattr__(address, "device", device)
    return address


def parse(topic: str) -> ParsedTopic:
    """Take a topic apart; raise :class:`ContractError` for anything outside the layout."""
    # The common case in one regular expression (every message takes this path); anything it
    # does not match is taken apart piece by piece below, to say what is wrong.
    match = _DEVICE_TOPIC_RE.fullmatch(topic)
    if match is not None:
        district, household, device, channel, command = match.groups()
        address = _checked_address(district, household, device)
        if channel is not None:
            return ParsedTopic(address, _CHANNELS[channel], None)
        return ParsedTopic(address, None, _COMMANDS[command])
    return _parse_parts(topic)


def _parse_parts(topic: str) -> ParsedTopic:
    """:func:`parse` piece by piece: the same answers, with an error that says what is wrong."""
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != ROOT:
        raise ContractError(f"topic {topic!r} is not under {PREFIX}/")
    if parts[1] != VERSION:
        raise ContractError(f"topic {topic!r} has unsupported version {parts[1]!r}")
    address = DeviceAddress(parts[2], parts[3], parts[4])
    rest = "/".join(parts[5:])
    if rest in _CHANNELS:
        return ParsedTopic(address, _CHANNELS[rest], None)
    if len(parts) == 7 and parts[5] == "cmd" and parts[6] in _COMMANDS:
        return ParsedTopic(address, None, _COMMANDS[parts[6]])
    raise ContractError(f"topic {topic!r} has unknown channel {rest!r}")


_APART = (Channel.STATE, Channel.CHECKIN_ANSWER)
"""Channels not in the lanes' shared list: ``state`` is subscribed plainly, check-in answers by
the silence flow (:func:`checkin_answer_subscription`)."""


def collector_subscriptions(share_group: str = COLLECTOR_SHARE_GROUP) -> list[str]:
    """Filters a collector's ingest subscribes to: every device channel the lanes store, shared
    between collectors.

    ``state`` is subscribed without ``$share`` as well so each collector sees retained states
    (retained messages are not delivered to shared subscriptions).
    """
    shared = [f"$share/{share_group}/{PREFIX}/+/+/+/{c.value}" for c in Channel if c not in _APART]
    return [*shared, f"{PREFIX}/+/+/+/{Channel.STATE.value}"]


def checkin_answer_subscription(share_group: str = COLLECTOR_SHARE_GROUP) -> str:
    """The collectors' shared subscription for every device's check-in answers."""
    return f"$share/{share_group}/{PREFIX}/+/+/+/{Channel.CHECKIN_ANSWER.value}"


_EVENT_CHANNELS = (Channel.SOS, Channel.SOS_CANCEL, Channel.REQUEST)


def collector_event_subscriptions(share_group: str = COLLECTOR_SHARE_GROUP) -> list[str]:
    """The event lane's filters: SOS, cancels and requests, on a connection of their own."""
    return [f"$share/{share_group}/{PREFIX}/+/+/+/{c.value}" for c in _EVENT_CHANNELS]


def collector_bulk_subscriptions(
    share_group: str = COLLECTOR_SHARE_GROUP, *, with_state: bool = True
) -> list[str]:
    """The bulk lane's filters: every other device channel (``state`` plainly, see above)."""
    shared = [
        f"$share/{share_group}/{PREFIX}/+/+/+/{c.value}"
        for c in Channel
        if c not in _APART and c not in _EVENT_CHANNELS
    ]
    return [*shared, f"{PREFIX}/+/+/+/{Channel.STATE.value}"] if with_state else shared
