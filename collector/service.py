"""Applies what arrives from devices to the store, using the pure decisions in ``domain/``.

The ingest path after the broker has two lanes (see ``collector/pipeline.py``):

* **bulk** — heartbeats, states and motion, many at once: :meth:`Service.decode` validates each
  message against the contract and the device registry, then :meth:`Service.apply_bulk` applies
  a whole batch in one transaction with set-based statements (each device's latest state, the
  daily rollups, motion events, dead letters). Heartbeats need no de-duplication row: the highest
  ``seq`` wins, and a rollup row counts a redelivered batch once.
* **events** — SOS and cancels, one at a time and ahead of any heartbeat:
  :meth:`Service.apply_event` de-duplicates by message id in the same transaction as the effect
  (dispatch, notifications), so a redelivered event changes nothing and is acknowledged again.

Anything that fails the contract or the registry is kept in ``dead_letters`` with the reason.
Errors from the database propagate: the pipeline decides whether the database is away (keep the
messages, retry) or one message is poison (find it, dead-letter it, go on).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.orm import Session

from collector.domain.dispatch import (
    Contact,
    DispatchPolicy,
    HouseholdView,
    Message,
    OpenDispatchView,
    decide_cancel,
    decide_sos,
)
from collector.domain.escalation import DispatchState, EscalationPolicy, decide_escalation
from collector.domain.intake import (
    ClockPolicy,
    HeartbeatFacts,
    daily_rollups,
    device_time,
    latest_per_device,
)
from collector.domain.lifecycle import AddNote
from collector.domain.links import LinkSigner, fill_links
from collector.domain.sos_test import incoming_sos
from collector.domain.supervision import HeartbeatFacts as SupervisedBeat
from collector.escalation_config import load_escalation
from collector.registry import DeviceHome, DeviceRegistry, store_lookup
from collector.settings import CollectorSettings
from collector.sos_tests import reack_test_sos, record_test_sos
from collector.store import bulk
from collector.store.db import Database
from collector.store.models import (
    DeadLetter,
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    EventRecord,
    Household,
    Notification,
    NotificationStatus,
    Priority,
    SeenMessage,
    UtcDateTime,
)
from collector.store.sql import insert_for, table_of
from collector.store.trail import record_change
from firmware_config import ContractError
from firmware_config.messages import (
    CallRequest,
    CancelAck,
    CommandMessage,
    DeviceMessage,
    Heartbeat,
    MotionEvent,
    SosAck,
    SosCancel,
    SosEvent,
    State,
    decode_device_message,
)
from firmware_config.topics import Channel, DeviceAddress, parse

log = logging.getLogger("anbu.collector.service")


@dataclass
class Outcome:
    """What handling one message produced."""

    kind: str
    """heartbeat | state | sos | sos_test | sos_cancel | request | motion | duplicate |
    dead_letter"""
    commands: list[tuple[DeviceAddress, CommandMessage]] = field(default_factory=list)
    notify: bool = False
    dispatch_id: int | None = None
    reason: str | None = None
    household_id: str | None = None
    """The household an SOS or cancel came from (its button or voice is a life sign)."""
    at: dt.datetime | None = None
    """When that SOS or cancel was received."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message that passed the contract and the registry."""

    topic: str
    payload: bytes
    received_at: dt.datetime
    address: DeviceAddress
    message: DeviceMessage

    @property
    def kind(self) -> str:
        return self.message.kind


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is dead-lettered, with the reason."""

    topic: str
    payload: bytes
    received_at: dt.datetime
    reason: str
    kind: str = "dead_letter"


@dataclass
class BulkResult:
    """What one bulk batch changed, for counters, life signs and the time-series sink."""

    counts: dict[str, int] = field(default_factory=dict)
    heartbeats: list[tuple[DeviceAddress, dt.datetime, Heartbeat]] = field(default_factory=list)
    """Each applied heartbeat with the time it is recorded at (the device's, or overruled)."""
    life_signs: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    """(household, kind, at) for every life sign in the batch; kinds are ``LifeSignKind`` values."""
    states: list[tuple[str, bool]] = field(default_factory=list)
    """(household, online) for every state message, in arrival order."""
    device_states: list[tuple[DeviceAddress, str, dt.datetime]] = field(default_factory=list)
    """(address, "online" | "offline", received at) for every state message, in arrival order."""
    supervised: list[tuple[DeviceAddress, dt.datetime, SupervisedBeat]] | None = None
    """What supervision reads of each heartbeat, when the batch's results come from the bulk
    process (which keeps ``heartbeats`` to itself); None: read it from ``heartbeats``."""


def household_view(household: Household) -> HouseholdView:
    """The plain-data view of a household that the pure decisions take."""
    caregiver = None
    if household.caregiver is not None and household.caregiver.active:
        c = household.caregiver
        caregiver = Contact("caregiver", c.name, c.phone, c.email)
    guardian = None
    # Only with the resident's consent: a recorded contact alone is not enough.
    if household.guardian_opt_in and (household.guardian_phone or household.guardian_email):
        guardian = Contact(
            "guardian",
            household.guardian_name or "보호자",
            household.guardian_phone,
            household.guardian_email,
        )
    backup = None
    if household.caregiver is not None and household.caregiver.backup is not None:
        b = household.caregiver.backup
        if b.active:
            backup = Contact("backup", b.name, b.phone, b.email)
    return HouseholdView(
        household.id,
        household.district,
        household.resident_name,
        household.address,
        caregiver,
        guardian,
        backup,
    )


def _open_view(dispatch: Dispatch | None) -> OpenDispatchView | None:
    if dispatch is None:
        return None
    return OpenDispatchView(dispatch.id, dispatch.reason, dispatch.created_at)


def add_notifications(
    session: Session,
    dispatch_id: int | None,
    messages: tuple[Message, ...],
    now: dt.datetime,
    links: LinkSigner | None,
    *,
    send_at: dt.datetime | None = None,
    service_request_id: int | None = None,
) -> int:
    """Queue ``messages`` about dispatch ``dispatch_id`` (their links signed), to be sent from
    ``send_at`` (default: now); one already queued for the same purpose and person is kept as it
    is. The one kind with no dispatch, a text from an unknown number (``service_request_id``),
    has no dispatch link to sign: ``dispatch_id`` and ``links`` are None."""
    if not messages:
        return 0
    rows = [
        {
            "dispatch_id": dispatch_id,
            "service_request_id": service_request_id,
            "channel": m.channel,
            "purpose": m.purpose,
            "recipient_role": m.recipient_role,
            "recipient": m.recipient,
            "subject": m.subject,
            "body": (
                m.body
                if dispatch_id is None or links is None
                else fill_links(m.body, dispatch_id, now=now, signer=links)
            ),
            "status": NotificationStatus.PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now if send_at is None else send_at,
        }
        for m in messages
    ]
    stmt = insert_for(session, table_of(Notification)).on_conflict_do_nothing()
    session.execute(stmt, rows)
    return len(rows)


def open_dispatch(
    session: Session,
    household: Household,
    *,
    reason: DispatchReason,
    priority: Priority,
    now: dt.datetime,
    next_escalation_at: dt.datetime | None,
    messages: tuple[Message, ...],
    links: LinkSigner,
    sos_message_id: str | None = None,
    note: str | None = None,
    send_at: dt.datetime | None = None,
) -> Dispatch:
    """A new open dispatch of ``household`` (flushed, so it has its id) for its caregiver, with
    ``messages`` queued from ``send_at`` (default: now). Every kind opens its dispatch here."""
    dispatch = Dispatch(
        household_id=household.id,
        caregiver_id=household.caregiver_id,
        reason=reason,
        priority=priority,
        status=DispatchStatus.OPEN,
        sos_message_id=sos_message_id,
        created_at=now,
        note=note,
        escalation_level=0,
        next_escalation_at=next_escalation_at,
    )
    session.add(dispatch)
    session.flush()
    add_notifications(session, dispatch.id, messages, now, links, send_at=send_at)
    return dispatch


SYSTEM = "anbu"
"""Who the timeline and the audit log name for what the collector did by itself."""

SAME_TROUBLE = (DispatchReason.SILENCE, DispatchReason.DEVICE_OFFLINE)
"""Kinds that are one trouble at one home: nobody hears from it. While one of them is open, the
other is added to it (a note and a step) instead of paging the caregiver a second time. An SOS is
never among them: it always opens or raises its own urgent dispatch."""


def open_trouble(session: Session, household_id: str) -> Dispatch | None:
    """The home's unresolved silence or device-offline dispatch (newest), if any.

    Takes the household's row lock first (``FOR UPDATE`` on PostgreSQL; SQLite has one writer
    anyway), so that two collectors opening a silence and a device-offline dispatch for the same
    home at the same moment take turns, and the second finds the first's dispatch.
    """
    session.execute(select(Household.id).where(Household.id == household_id).with_for_update())
    return session.scalar(
        select(Dispatch)
        .where(
            Dispatch.household_id == household_id,
            Dispatch.reason.in_(SAME_TROUBLE),
            Dispatch.status != DispatchStatus.RESOLVED,
        )
        .order_by(Dispatch.id.desc())
        .limit(1)
    )


def add_system_note(
    session: Session, dispatch: Dispatch, household: Household, note: str, now: dt.datetime
) -> None:
    """A note by the collector on ``dispatch``: kept on the dispatch, a step on its timeline and
    a row in the audit log, like a note made on the pages. Changes no state, so the dispatch's
    escalation goes on as it was."""
    dispatch.note = f"{dispatch.note}\n{note}" if dispatch.note else note
    record_change(
        session,
        dispatch_id=dispatch.id,
        household_id=household.id,
        district=household.district,
        event=AddNote(note, SYSTEM),
        by=SYSTEM,
        actor=SYSTEM,
        account_id=None,
        now=now,
    )


_devices = table_of(Device)
_newer = _devices.c.last_seq < bindparam("b_seq")
_SEEN = (
    update(_devices)
    .where(_devices.c.id == bindparam("b_id"))
    .values(
        last_seen_at=bindparam("b_heard", type_=UtcDateTime()),
        last_seq=case((_newer, bindparam("b_seq")), else_=_devices.c.last_seq),
    )
)
_STATE = (
    update(_devices)
    .where(_devices.c.id == bindparam("b_id"))
    .values(
        online=bindparam("b_online"),
        state_changed_at=bindparam("b_at", type_=UtcDateTime()),
        agent_version=case(
            (bindparam("b_version") != "", bindparam("b_version")),
            else_=_devices.c.agent_version,
        ),
    )
)


class Service:
    """The collector's ingest and escalation logic over one database."""

    def __init__(
        self,
        db: Database,
        dispatch_policy: DispatchPolicy | None = None,
        escalation_policy: EscalationPolicy | None = None,
        *,
        registry: DeviceRegistry | None = None,
        clock_policy: ClockPolicy | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        self.db = db
        self.dispatch_policy = dispatch_policy or DispatchPolicy()
        self.escalation_policy = escalation_policy or EscalationPolicy(
            first_after_s=self.dispatch_policy.ack_timeout_s
        )
        # Without a configured secret the links still work as links; only the pages verify them.
        self.links = links or LinkSigner(
            secrets.token_bytes(32), self.dispatch_policy.dashboard_url
        )
        self.clock_policy = clock_policy or ClockPolicy()
        self.registry = registry or DeviceRegistry(store_lookup(db.sessions))
        self.counts: dict[str, int] = {}

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    # -- validation -----------------------------------------------------------------------

    def decode(self, items: Sequence[tuple[str, bytes, dt.datetime]]) -> list[Decoded | Rejected]:
        """Contract and registry checks for ``(topic, payload, received_at)`` items, in order."""
        checked: list[tuple[str, bytes, dt.datetime, DeviceAddress, DeviceMessage] | Rejected] = []
        for topic, payload, received_at in items:
            try:
                parsed = parse(topic)
                if parsed.channel is None:
                    raise ContractError(
                        f"topic {topic!r} is a command topic; devices do not send those"
                    )
                if parsed.channel is Channel.CHECKIN_ANSWER:  # the silence flow's, not a lane's
                    raise ContractError(f"topic {topic!r} is a check-in answer; lanes store none")
                message = decode_device_message(parsed.channel, payload)
            except ContractError as exc:
                checked.append(Rejected(topic, payload, received_at, str(exc)))
                continue
            checked.append((topic, payload, received_at, parsed.address, message))
        wanted = [
            (c[3].device, c[3].household, c[3].district)
            for c in checked
            if not isinstance(c, Rejected)
        ]
        homes: dict[str, DeviceHome | None] = {}
        if wanted:
            now_s = max(c[2] for c in checked if not isinstance(c, Rejected)).timestamp()
            homes = self.registry.resolve(wanted, now_s)
        out: list[Decoded | Rejected] = []
        for c in checked:
            if isinstance(c, Rejected):
                out.append(c)
                continue
            topic, payload, received_at, address, message = c
            home = homes.get(address.device)
            if home is None:
                out.append(
                    Rejected(
                        topic,
                        payload,
                        received_at,
                        f"device {address.device!r} is not registered",
                    )
                )
            elif home.household_id != address.household or home.district != address.district:
                out.append(
                    Rejected(
                        topic,
                        payload,
                        received_at,
                        f"device {address.device!r} belongs to {home.district}/"
                        f"{home.household_id}, not {address.district}/{address.household} "
                        "(spoofed topic?)",
                    )
                )
            else:
                out.append(Decoded(topic, payload, received_at, address, message))
        return out

    # -- the bulk lane --------------------------------------------------------------------

    def apply_bulk(self, items: Sequence[Decoded | Rejected]) -> BulkResult:
        """Apply heartbeats, states, motion and dead letters in one transaction."""
        result = BulkResult()
        with self.db.session() as session:
            self._apply_bulk(session, items, result)
        for kind, n in result.counts.items():
            self.count(kind, n)
        return result

    def _apply_bulk(
        self, session: Session, items: Sequence[Decoded | Rejected], result: BulkResult
    ) -> None:
        heartbeats: list[HeartbeatFacts] = []
        offsets: dict[str, float] = {}
        states: dict[str, dict[str, object]] = {}
        motions: list[dict[str, object]] = []
        alive: dict[str, dt.datetime] = {}
        seen: dict[str, tuple[int, dt.datetime]] = {}
        dead: list[dict[str, object]] = []
        counts = result.counts
        for item in items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
            if isinstance(item, Rejected):
                dead.append(_dead_letter_row(item))
                continue
            message, address = item.message, item.address
            if isinstance(message, State):
                # Applied in arrival order: the last will carries the timestamp of the
                # connection it was registered with, so device timestamps would mislead here.
                result.states.append((address.household, message.state == "online"))
                result.device_states.append((address, message.state, item.received_at))
                states[address.device] = {
                    "b_id": address.device,
                    "b_online": message.state == "online",
                    "b_at": item.received_at,
                    "b_version": message.agent_version,
                }
                continue
            when = device_time(message.device_ts, item.received_at, self.clock_policy)
            if when.correction is not None:
                log.warning(
                    "device clock overruled",
                    extra={"device": address.device, "reason": when.correction},
                )
            if isinstance(message, Heartbeat):
                facts = HeartbeatFacts(
                    address.device,
                    message.seq,
                    when.at,
                    message.motion_count,
                    message.speech_s,
                    message.wake_word_count,
                    message.interactions,
                    message.button_presses,
                    message.audio_overruns,
                    message.outbox_depth,
                    message.uptime_s,
                    message.agent_version,
                )
                heartbeats.append(facts)
                offsets[address.device] = when.offset_s
                result.heartbeats.append((address, when.at, message))
                kind = facts.life_sign_kind
                if kind is not None:
                    result.life_signs.append((address.household, kind, when.at))
            elif isinstance(message, MotionEvent):
                motions.append(
                    {
                        "message_id": message.message_id,
                        "device_id": address.device,
                        "household_id": address.household,
                        "kind": "motion",
                        "device_ts": when.at,
                        "received_at": item.received_at,
                    }
                )
                if address.device not in alive or when.at > alive[address.device]:
                    alive[address.device] = when.at
                seen_seq = max(seen.get(address.device, (0, when.at))[0], message.seq)
                seen[address.device] = (seen_seq, item.received_at)
                result.life_signs.append((address.household, "motion", when.at))
            else:  # pragma: no cover - the event lane takes SOS and cancels
                raise ContractError(f"{message.kind} does not belong in the bulk lane")
        # Every row is made before the first write: SQLite holds its one write lock (which an
        # SOS in the other lane waits for) only while the statements run.
        latest = latest_per_device(heartbeats)
        latest_rows = bulk.for_driver(
            session,
            [
                {
                    "id": d.device_id,
                    "heard": d.heard_at,
                    "seq": d.seq,
                    "version": d.agent_version,
                    "depth": d.outbox_depth,
                    "overruns": d.audio_overruns,
                    "offset": offsets[d.device_id],
                }
                for d in latest
            ],
            times=("heard",),
        )
        for d in latest:
            if d.life_sign_at is not None and (
                d.device_id not in alive or d.life_sign_at > alive[d.device_id]
            ):
                alive[d.device_id] = d.life_sign_at
        rollup_rows = [
            {
                "device_id": r.device_id,
                "day": r.day.isoformat(),
                "heartbeats": r.heartbeats,
                "motion_count": r.motion_count,
                "speech_s": r.speech_s,
                "wake_word_count": r.wake_word_count,
                "interactions": r.interactions,
                "button_presses": r.button_presses,
                "max_outbox_depth": r.max_outbox_depth,
                "last_seq": r.last_seq,
            }
            for r in daily_rollups(heartbeats)
        ]
        alive_rows = bulk.for_driver(
            session, [{"id": k, "alive": v} for k, v in alive.items()], times=("alive",)
        )
        bulk.run(session, bulk.LATEST, latest_rows)
        bulk.run(session, bulk.ROLLUP, rollup_rows)
        if seen:
            session.execute(
                _SEEN, [{"b_id": k, "b_seq": q, "b_heard": at} for k, (q, at) in seen.items()]
            )
        bulk.run(session, bulk.LIFE_SIGN, alive_rows)
        if states:
            session.execute(_STATE, list(states.values()))
        if motions:
            stmt = insert_for(session, table_of(EventRecord)).on_conflict_do_nothing(
                index_elements=["message_id"]
            )
            session.execute(stmt, motions)
        if dead:
            session.execute(table_of(DeadLetter).insert(), dead)
            _log_dead_letters([i for i in items if isinstance(i, Rejected)])

    def dead_letter(
        self, topic: str, payload: bytes, reason: str, received_at: dt.datetime
    ) -> Outcome:
        """Keep one message that cannot be applied, with the reason, in its own transaction."""
        self.dead_letters([Rejected(topic, payload, received_at, reason)])
        return Outcome("dead_letter", reason=reason)

    def dead_letters(self, items: Sequence[Rejected]) -> None:
        """Keep messages that cannot be applied, with their reasons, in one transaction."""
        if not items:
            return
        with self.db.session() as session:
            session.execute(table_of(DeadLetter).insert(), [_dead_letter_row(i) for i in items])
        self.count("dead_letter", len(items))
        _log_dead_letters(items)

    # -- the event lane -------------------------------------------------------------------

    def apply_event(self, item: Decoded | Rejected) -> Outcome:
        """Apply one SOS or cancel (or dead-letter a rejected message) in one transaction."""
        if isinstance(item, Rejected):
            return self.dead_letter(item.topic, item.payload, item.reason, item.received_at)
        with self.db.session() as session:
            outcome = self._apply_event(session, item)
        if outcome.kind in ("sos", "sos_cancel", "sos_test"):
            outcome.household_id = item.address.household
            outcome.at = item.received_at
        self.count(outcome.kind)
        return outcome

    def handle(self, topic: str, payload: bytes, received_at: dt.datetime) -> Outcome:
        """Handle one message end to end (either lane); for tools and tests.

        The pipeline batches instead; this is the same code applied to a batch of one.
        """
        [item] = self.decode([(topic, payload, received_at)])
        if isinstance(item, Rejected) or item.message.kind in ("sos", "sos_cancel", "request"):
            return self.apply_event(item)
        result = self.apply_bulk([item])
        return Outcome(next(iter(result.counts)))

    def _apply_event(self, session: Session, item: Decoded) -> Outcome:
        message, address, now = item.message, item.address, item.received_at
        first_time = session.execute(
            insert_for(session, table_of(SeenMessage))
            .on_conflict_do_nothing()
            .returning(table_of(SeenMessage).c.message_id),
            {"message_id": message.message_id, "device_id": address.device, "received_at": now},
        ).first()
        if first_time is None:
            return self._duplicate(session, message, address, now)
        device = session.get(Device, address.device)
        if device is None:  # removed since the registry looked
            raise ContractError(f"device {address.device!r} is not registered")
        household = device.household
        device.last_seen_at = now
        device.last_seq = max(device.last_seq, message.seq)
        when = device_time(message.device_ts, now, self.clock_policy)
        device.clock_offset_s = when.offset_s
        if isinstance(message, SosEvent):
            return self._sos(session, device, household, message, address, when.at, now)
        if isinstance(message, SosCancel):
            return self._cancel(session, device, household, message, address, when.at, now)
        if isinstance(message, CallRequest):
            from collector.requests import file_request  # imports this module

            filed = file_request(
                session,
                message_id=message.message_id,
                channel="voice",
                household=household,
                district=household.district,
                sender=None,
                text=message.phrase or "",
                now=now,
                policy=self.escalation_policy,
                links=self.links,
            )
            return Outcome("request", dispatch_id=filed.dispatch_id)
        raise ContractError(f"{message.kind} does not belong in the event lane")

    def _duplicate(
        self, session: Session, message: object, address: DeviceAddress, now: dt.datetime
    ) -> Outcome:
        # The device may not have heard our acknowledgement: say it again (idempotent on its side).
        outcome = Outcome("duplicate")
        if isinstance(message, SosEvent) and message.test:
            test_ack = reack_test_sos(session, message, now)
            if test_ack is not None:
                outcome.commands.append((address, test_ack))
            return outcome
        if isinstance(message, SosEvent):
            dispatch = session.scalar(
                select(Dispatch).where(Dispatch.sos_message_id == message.message_id)
            )
            if dispatch is None:  # joined an open dispatch: find it through the stored event
                dispatch = self._dispatch_of_event(session, message.message_id)
            if dispatch is not None:
                outcome.dispatch_id = dispatch.id
                outcome.commands.append(
                    (
                        address,
                        SosAck(
                            device_ts=now.timestamp(),
                            seq=0,
                            sos_id=message.message_id,
                            dispatch_id=dispatch.id,
                        ),
                    )
                )
        elif isinstance(message, SosCancel):
            dispatch = session.scalar(
                select(Dispatch).where(Dispatch.sos_message_id == message.sos_id)
            ) or self._dispatch_of_event(session, message.message_id)
            outcome.dispatch_id = None if dispatch is None else dispatch.id
            outcome.commands.append(
                (
                    address,
                    CancelAck(
                        device_ts=now.timestamp(),
                        seq=0,
                        sos_id=message.sos_id,
                        dispatch_id=None if dispatch is None else dispatch.id,
                    ),
                )
            )
        return outcome

    @staticmethod
    def _dispatch_of_event(session: Session, message_id: str) -> Dispatch | None:
        event = session.scalar(select(EventRecord).where(EventRecord.message_id == message_id))
        if event is None or event.dispatch_id is None:
            return None
        return session.get(Dispatch, event.dispatch_id)

    @staticmethod
    def _event(
        device: Device,
        household: Household,
        kind: str,
        message: SosEvent | SosCancel,
        at: dt.datetime,
        now: dt.datetime,
    ) -> EventRecord:
        return EventRecord(
            message_id=message.message_id,
            device_id=device.id,
            household_id=household.id,
            kind=kind,
            source=getattr(message, "source", None),
            phrase=getattr(message, "phrase", None),
            sos_id=getattr(message, "sos_id", None),
            device_ts=at,
            received_at=now,
        )

    def _open_sos(self, session: Session, household_id: str) -> Dispatch | None:
        return session.scalar(
            select(Dispatch)
            .where(
                Dispatch.household_id == household_id,
                Dispatch.reason == DispatchReason.SOS,
                Dispatch.status != DispatchStatus.RESOLVED,
            )
            .order_by(Dispatch.id.desc())
            .limit(1)
        )

    def _sos(
        self,
        session: Session,
        device: Device,
        household: Household,
        sos: SosEvent,
        address: DeviceAddress,
        at: dt.datetime,
        now: dt.datetime,
    ) -> Outcome:
        # A test SOS (the technician's check, a resident trying it) is recorded and
        # acknowledged, and goes no further: nobody is dispatched.
        if not incoming_sos(test=sos.test).open_dispatch:
            ack = record_test_sos(session, device, household, sos, now)
            log.info("test sos", extra={"household": household.id, "device": device.id})
            return Outcome("sos_test", [(address, ack)])
        event = self._event(device, household, "sos", sos, at, now)
        session.add(event)
        if device.last_life_sign_at is None or device.last_life_sign_at < at:
            device.last_life_sign_at = at
        existing = self._open_sos(session, household.id)
        decision = decide_sos(
            household_view(household),
            _open_view(existing),
            source=sos.source,
            phrase=sos.phrase,
            message_id=sos.message_id,
            now=now,
            policy=self.dispatch_policy,
        )
        if decision.open_new:
            dispatch_id = open_dispatch(
                session,
                household,
                reason=DispatchReason.SOS,
                priority=Priority.URGENT,
                now=now,
                # The district's SOS chain decides when the first step is due.
                next_escalation_at=self.escalation_policy.first_due_at(
                    household.district, DispatchReason.SOS.value, now
                ),
                messages=decision.messages,
                links=self.links,
                sos_message_id=sos.message_id,
            ).id
            queued = len(decision.messages)
        else:
            assert decision.existing_dispatch_id is not None  # noqa: S101
            dispatch_id = decision.existing_dispatch_id
            queued = add_notifications(session, dispatch_id, decision.messages, now, self.links)
        event.dispatch_id = dispatch_id
        queued += self._cancel_that_overtook(session, household, sos, dispatch_id, now)
        log.info(
            "sos",
            extra={
                "household": household.id,
                "device": device.id,
                "dispatch": dispatch_id,
                "new_dispatch": decision.open_new,
                "source": sos.source,
            },
        )
        ack = SosAck(
            device_ts=now.timestamp(), seq=0, sos_id=sos.message_id, dispatch_id=dispatch_id
        )
        return Outcome("sos", [(address, ack)], notify=bool(queued), dispatch_id=dispatch_id)

    def _cancel_that_overtook(
        self,
        session: Session,
        household: Household,
        sos: SosEvent,
        dispatch_id: int,
        now: dt.datetime,
    ) -> int:
        """A cancel for this SOS that arrived first (through another collector) still counts."""
        cancel = session.scalar(
            select(EventRecord).where(
                EventRecord.kind == "sos_cancel", EventRecord.sos_id == sos.message_id
            )
        )
        if cancel is None:
            return 0
        dispatch = session.get(Dispatch, dispatch_id)
        assert dispatch is not None  # noqa: S101 - flushed above
        dispatch.cancelled_by_resident_at = dispatch.cancelled_by_resident_at or cancel.device_ts
        cancel.dispatch_id = dispatch_id
        decision = decide_cancel(
            household_view(household),
            _open_view(dispatch),
            source=cancel.source or "button",
            now=now,
            policy=self.dispatch_policy,
            message_id=cancel.message_id,
        )
        return add_notifications(session, dispatch_id, decision.messages, now, self.links)

    def _cancel(
        self,
        session: Session,
        device: Device,
        household: Household,
        cancel: SosCancel,
        address: DeviceAddress,
        at: dt.datetime,
        now: dt.datetime,
    ) -> Outcome:
        event = self._event(device, household, "sos_cancel", cancel, at, now)
        session.add(event)
        if device.last_life_sign_at is None or device.last_life_sign_at < at:
            device.last_life_sign_at = at
        dispatch = session.scalar(select(Dispatch).where(Dispatch.sos_message_id == cancel.sos_id))
        if dispatch is None:
            dispatch = self._dispatch_of_event(session, cancel.sos_id)
        if dispatch is None:
            # The SOS itself may still be on its way (it is older, but a cancel can overtake it
            # on another collector): the SOS finds this cancel when it lands. The repeated-SOS
            # rule still catches an open dispatch of this household.
            sos_known = session.scalar(
                select(EventRecord.id).where(EventRecord.message_id == cancel.sos_id)
            )
            dispatch = self._open_sos(session, household.id) if sos_known else None
        decision = decide_cancel(
            household_view(household),
            _open_view(dispatch),
            source=cancel.source,
            now=now,
            policy=self.dispatch_policy,
            message_id=cancel.message_id,
        )
        queued = 0
        if dispatch is not None and decision.dispatch_id is not None:
            dispatch.cancelled_by_resident_at = dispatch.cancelled_by_resident_at or now
            event.dispatch_id = dispatch.id
            queued = add_notifications(session, dispatch.id, decision.messages, now, self.links)
        ack = CancelAck(
            device_ts=now.timestamp(),
            seq=0,
            sos_id=cancel.sos_id,
            dispatch_id=None if dispatch is None else dispatch.id,
        )
        return Outcome(
            "sos_cancel",
            [(address, ack)],
            notify=bool(queued),
            dispatch_id=None if dispatch is None else dispatch.id,
        )

    # -- escalation ---------------------------------------------------------------------

    def escalate_due(self, now: dt.datetime) -> int:
        """Apply every escalation due at ``now``, and tell the supervisors of texts from unknown
        numbers unanswered past their working day; returns how many notifications were queued.

        Several collectors may run this at once: on PostgreSQL each claims its rows with
        ``FOR UPDATE SKIP LOCKED``; everywhere the update is conditional on what was read.
        """
        queued = 0
        with self.db.session() as session:
            due = session.scalars(
                select(Dispatch)
                .where(Dispatch.status == DispatchStatus.OPEN, Dispatch.next_escalation_at <= now)
                .order_by(Dispatch.next_escalation_at)
                .limit(100)
                .with_for_update(skip_locked=True)
            ).all()
            for dispatch in due:
                state = DispatchState(
                    dispatch.id,
                    dispatch.status.value,
                    dispatch.escalation_level,
                    dispatch.next_escalation_at,
                    dispatch.created_at,
                    dispatch.reason.value,
                )
                step = decide_escalation(
                    state,
                    household_view(dispatch.household),
                    now=now,
                    policy=self.escalation_policy,
                )
                # Conditional on what was read: an acknowledgement that lands meanwhile wins.
                claim = (
                    update(Dispatch)
                    .where(
                        Dispatch.id == dispatch.id,
                        Dispatch.status == DispatchStatus.OPEN,
                        Dispatch.escalation_level == dispatch.escalation_level,
                    )
                    .values(
                        escalation_level=dispatch.escalation_level
                        if step is None
                        else step.new_level,
                        next_escalation_at=None if step is None else step.next_due_at,
                    )
                    .execution_options(synchronize_session=False)
                )
                if session.execute(claim).rowcount != 1 or step is None:  # type: ignore[attr-defined]
                    continue
                queued += add_notifications(session, dispatch.id, step.messages, now, self.links)
                log.warning(
                    "escalated",
                    extra={
                        "dispatch": dispatch.id,
                        "kind": dispatch.reason.value,
                        "level": step.new_level,
                        "skipped_steps": list(step.skipped),
                        "recipients": sorted({m.recipient_role for m in step.messages}),
                    },
                )
        with self.db.session() as session:
            from collector.requests import escalate_unanswered_texts  # imports this module

            queued += escalate_unanswered_texts(session, now=now, policy=self.escalation_policy)
        return queued


def _log_dead_letters(items: Sequence[Rejected]) -> None:
    # One line per batch, not per message: a flood of garbage must not become a flood of logs.
    first = items[0]
    log.warning(
        "dead letters",
        extra={"count": len(items), "topic": first.topic[:200], "reason": first.reason[:300]},
    )


def _dead_letter_row(item: Rejected) -> dict[str, object]:
    return {
        "topic": item.topic[:512],
        "payload": item.payload[:8192],
        "reason": item.reason[:2000],
        "received_at": item.received_at,
    }


# -- built from settings (the collector's main process and its bulk process) -----------------


def link_signer(settings: CollectorSettings) -> LinkSigner:
    """The signer of SMS/e-mail links; the pages verify with the same one."""
    return LinkSigner(
        settings.link_secret.encode(), settings.public_url, ttl_s=settings.link_ttl_h * 3600
    )


def staff_contact(settings: CollectorSettings) -> Contact | None:
    """The district staff's contact, if one is configured."""
    if settings.staff_email or settings.staff_phone:
        return Contact("staff", settings.staff_name, settings.staff_phone, settings.staff_email)
    return None


def escalation_policy(settings: CollectorSettings, staff: Contact | None) -> EscalationPolicy:
    """The chains of ``ANBU_ESCALATION_FILE``, or the built-in ladder when it is unset."""
    book, calendar = (None, None)
    if settings.escalation_file is not None:
        book, calendar = load_escalation(settings.escalation_file)
    policy = EscalationPolicy(
        repeat_after_s=settings.escalation_repeat_s,
        staff=staff,
        dashboard_url=settings.public_url,
        book=book,
        first_after_s=settings.sos_ack_timeout_s,
    )
    if calendar is not None:
        policy = dataclasses.replace(policy, calendar=calendar)
    return policy


def build_service(settings: CollectorSettings, db: Database, registry: DeviceRegistry) -> Service:
    """The ingest service with the dispatch policy and escalation chains the settings give."""
    staff = staff_contact(settings)
    return Service(
        db,
        DispatchPolicy(
            ack_timeout_s=settings.sos_ack_timeout_s,
            staff=staff,
            dashboard_url=settings.public_url,
        ),
        escalation_policy(settings, staff),
        registry=registry,
        links=link_signer(settings),
    )
