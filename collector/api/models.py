"""What the API reads and writes: ``ThingCreate`` in, ``ThingPublic`` out, ``Page[ThingPublic]``.

Request bodies refuse unknown fields (a typo such as ``"caregiverid"`` is a 422, not silently
ignored) and strip surrounding whitespace. Identifiers that also appear in MQTT topics (district,
household, device) follow the contract's ``ID_PATTERN``: lower-case ASCII, digits, ``-``, ``_``.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field

from collector.domain.lifecycle import Outcome
from collector.store.models import (
    Caregiver,
    DispatchReason,
    DispatchStatus,
    NotificationStatus,
    Priority,
    RiskLevel,
)
from firmware_config.topics import ID_PATTERN

# No control characters in text (PostgreSQL refuses NUL; the others are never meant), said in
# the schema itself so that clients and fuzzers know; notes may keep tabs and line breaks.
_LINE = r"[^\x00-\x1f\x7f-\x9f]"
_NOTE = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f]+"

TopicId = Annotated[str, Field(pattern=ID_PATTERN, examples=["h0001"])]
District = Annotated[str, Field(pattern=ID_PATTERN, examples=["seodaemun"])]
Phone = Annotated[str, Field(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 -]*[0-9]$")]
Email = Annotated[
    str, Field(max_length=254, pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$")
]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=rf"^{_LINE}+$")]
Address = Annotated[str, Field(max_length=300, pattern=rf"^{_LINE}*$")]
Note = Annotated[str, Field(max_length=4000, pattern=rf"^{_NOTE}*$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: ``data`` in order, ``count`` items in all (for the filters given)."""

    data: list[T]
    count: int = Field(description="items matching the filters, on every page")
    limit: int
    offset: int
    next_cursor: str | None = Field(
        default=None,
        description="pass as `cursor` for the next page; null on the last page",
    )


# Caregivers


class CaregiverCreate(_Request):
    name: Name
    phone: Phone
    email: Email
    district: District
    active: bool = True


class CaregiverPublic(_Public):
    id: int
    name: str
    phone: str
    email: str
    district: str
    active: bool
    household_count: int = Field(description="households this caregiver looks after")

    @classmethod
    def of(cls, caregiver: Caregiver, household_count: int) -> CaregiverPublic:
        fields = ("id", "name", "phone", "email", "district", "active")
        return cls.model_validate(
            {name: getattr(caregiver, name) for name in fields}
            | {"household_count": household_count}
        )


# Households and devices


class HouseholdCreate(_Request):
    """A resident living alone. Without ``caregiver_id`` the least-loaded caregiver of the
    district with room is assigned (one caregiver per 100 households)."""

    id: TopicId
    district: District
    resident_name: Name
    address: Address = ""
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    guardian_name: Name | None = None
    guardian_phone: Phone | None = None
    guardian_email: Email | None = None
    guardian_opt_in: bool = Field(
        default=False, description="the resident agreed that the guardian is told of alarms"
    )
    silence_period_h: float = Field(
        default=48.0, ge=1, le=24 * 14, description="hours without a life sign before a visit"
    )
    risk_level: RiskLevel = RiskLevel.BLUE
    caregiver_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class HouseholdPublic(_Public):
    id: str
    district: str
    resident_name: str
    address: str
    latitude: float | None
    longitude: float | None
    guardian_name: str | None
    guardian_phone: str | None
    guardian_email: str | None
    guardian_opt_in: bool
    silence_period_h: float
    risk_level: RiskLevel
    caregiver_id: int | None
    created_at: dt.datetime


class DeviceCreate(_Request):
    """Register an edge agent for a household; its id is the MQTT username and topic segment."""

    id: Annotated[str, Field(pattern=ID_PATTERN, examples=["d0001"])]
    household_id: TopicId


class DevicePublic(_Public):
    id: str
    household_id: str
    online: bool
    state_changed_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    last_life_sign_at: dt.datetime | None
    agent_version: str
    last_seq: int
    last_outbox_depth: int


# Dispatches


class NotificationPublic(_Public):
    id: int
    channel: str
    purpose: str
    recipient_role: str
    recipient: str
    subject: str
    body: str
    status: NotificationStatus
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    last_error: str | None


class DispatchPublic(_Public):
    id: int
    household_id: str
    district: str = Field(validation_alias=AliasPath("household", "district"))
    resident_name: str = Field(validation_alias=AliasPath("household", "resident_name"))
    caregiver_id: int | None
    reason: DispatchReason
    priority: Priority
    status: DispatchStatus
    sos_message_id: str | None
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    outcome: Outcome | None
    note: str | None
    cancelled_by_resident_at: dt.datetime | None
    escalation_level: int
    next_escalation_at: dt.datetime | None


class DispatchDetail(DispatchPublic):
    notifications: list[NotificationPublic]


class HouseholdDetail(HouseholdPublic):
    caregiver: CaregiverPublic | None
    devices: list[DevicePublic]
    recent_dispatches: list[DispatchPublic] = Field(description="newest first")


class AcknowledgeRequest(_Request):
    by: Name = Field(description="who takes the dispatch", examples=["김미영"])


class ResolveRequest(_Request):
    outcome: Outcome
    note: Note | None = None
    by: Name | None = Field(
        default=None, description="recorded as the acknowledger if nobody acknowledged before"
    )


# Dead letters


class DeadLetterPublic(_Public):
    id: int
    topic: str
    reason: str
    received_at: dt.datetime
    details: dict[str, Any] | None
    raw: bytes = Field(validation_alias="payload", exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def payload(self) -> str:
        """The payload as text (undecodable bytes replaced)."""
        return self.raw.decode("utf-8", errors="replace")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def payload_base64(self) -> str:
        """The exact payload bytes."""
        return base64.b64encode(self.raw).decode("ascii")
