"""From a silence flag to a closed flag or a caregiver: the collector's check-in flow.

``SilenceFlow.on_flag`` is the ``on_flag`` handler of :class:`~collector.silence_runtime.
SilenceRuntime`. It applies :mod:`collector.domain.silence_checkin`:

* device online → a ``cmd/checkin`` request is published, the flag row goes to ``checkin``;
* device offline (or check-in off) → a silence dispatch opens at once.

``on_answer(topic, payload, now)`` takes ``event/checkin_answer`` messages (subscribe with
:func:`firmware_config.checkin.checkin_answer_subscription`): an answer in time closes the flag
with its record and counts as a life sign; no answer opens the dispatch. ``tick(now)`` opens
the dispatch for check-ins whose window ran out with nothing heard.

A silence dispatch is written like an SOS dispatch (``dispatches`` row, ``reason = silence``,
``priority = normal``, its notifications queued for the notification worker, escalation due
after ``escalate_after_s``). A home whose ``device_offline`` dispatch is still unresolved gets no
second one: the silence is a note (and a step) on that dispatch, whose escalation goes on, and
the flag points to it. :class:`StoreDispatches` does that on today's tables; it is the
one adapter to replace if the ingest rewrite changes how dispatches are opened.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from collector.domain.dispatch import Message
from collector.domain.escalation import EscalationPolicy
from collector.domain.links import LinkSigner
from collector.domain.silence import LifeSignKind, SilenceFlag, SilenceLimit, SilenceReason
from collector.domain.silence_checkin import (
    AskCheckin,
    CheckinPolicy,
    CloseFlag,
    DispatchForSilence,
    Ignore,
    LateAnswer,
    PendingCheckin,
    on_answer,
    on_flag,
    on_tick,
)
from collector.service import add_system_note, household_view, open_dispatch, open_trouble
from collector.store.db import Database
from collector.store.models import (
    Device,
    Dispatch,
    DispatchReason,
    Household,
    Priority,
)
from collector.store.silence import HouseholdSilence, SilenceFlagRow
from firmware_config.checkin import (
    CheckinRequest,
    checkin_command_topic,
    decode_checkin_answer,
    parse_checkin_topic,
)
from firmware_config.errors import ContractError
from firmware_config.messages import new_message_id
from firmware_config.topics import DeviceAddress

log = logging.getLogger("anbu.collector.silence")


class Publisher(Protocol):
    """The collector's MQTT client, as far as check-in needs it (QoS 1)."""

    def publish(self, topic: str, payload: bytes) -> None: ...


class Dispatches(Protocol):
    """Opens a silence dispatch and queues its messages (or adds the silence to the home's open
    dispatch for the same trouble); returns the dispatch id. ``why`` is the flag's reason."""

    def open_silence(
        self,
        session: Session,
        household_id: str,
        messages: tuple[Message, ...],
        now: dt.datetime,
        *,
        why: str = "",
    ) -> int: ...

    def add_note(self, session: Session, dispatch_id: int, note: str) -> None: ...


class StoreDispatches:
    """:class:`Dispatches` on today's ``dispatches`` and ``notifications`` tables."""

    def __init__(
        self,
        escalate_after_s: float = 900.0,
        escalation: EscalationPolicy | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        self.escalate_after_s = escalate_after_s
        # Signs the caregiver's link; without the collector's signer (tests) the links are signed
        # with a key nobody holds, so they open nothing.
        self.links = links or LinkSigner(secrets.token_bytes(32), "http://127.0.0.1:8000")
        # With configured chains (ANBU_ESCALATION_FILE) the district's silence chain decides.
        self.escalation = escalation if escalation and escalation.book else None

    def open_silence(
        self,
        session: Session,
        household_id: str,
        messages: tuple[Message, ...],
        now: dt.datetime,
        *,
        why: str = "",
    ) -> int:
        household = session.get(Household, household_id)
        if household is None:  # the flow checks before it dispatches; deleted meanwhile
            raise LookupError(f"no household {household_id!r}")
        # Its device is already dispatched as offline: the same trouble, one dispatch.
        same = open_trouble(session, household_id)  # waits for a racing collector
        if same is not None:
            add_system_note(session, same, household, f"무활동 감지: {why}".rstrip(": "), now)
            log.warning(
                "silence added to the home's open dispatch",
                extra={"household_id": household_id, "dispatch_id": same.id},
            )
            return same.id
        return open_dispatch(
            session,
            household,
            reason=DispatchReason.SILENCE,
            priority=Priority.NORMAL,
            now=now,
            next_escalation_at=(
                now + dt.timedelta(seconds=self.escalate_after_s)
                if self.escalation is None
                else self.escalation.first_due_at(household.district, "silence", now)
            ),
            messages=messages,
            links=self.links,
        ).id

    def add_note(self, session: Session, dispatch_id: int, note: str) -> None:
        dispatch = session.get(Dispatch, dispatch_id)
        if dispatch is not None:
            dispatch.note = f"{dispatch.note}\n{note}" if dispatch.note else note


class SilenceFlow:
    """Runs check-in and dispatch for silence flags, on the store."""

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        policy: CheckinPolicy | None = None,
        dispatches: Dispatches | None = None,
        on_life_sign: Callable[[str, LifeSignKind, dt.datetime], None] = lambda *_: None,
        on_notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.policy = policy or CheckinPolicy()
        self.dispatches = dispatches or StoreDispatches()
        self.on_life_sign = on_life_sign
        self.on_notify = on_notify
        self._pending: dict[str, tuple[int, PendingCheckin]] = {}
        self._notify = False  # a dispatch was written: wake the notifier after the commit

    def _wake_notifier(self) -> None:
        if self._notify:
            self._notify = False
            self.on_notify()

    def on_flag(self, flag: SilenceFlag, flag_id: int) -> None:
        """The silence runtime raised ``flag`` (row ``flag_id``): ask first, or dispatch."""
        now = flag.flagged_at
        with self.db.session() as session:
            household = session.get(Household, flag.household_id)
            if household is None:
                log.error("silence flag for an unknown household", extra={"flag_id": flag_id})
                return
            view = household_view(household)
            device = session.scalars(
                select(Device)
                .where(Device.household_id == household.id)
                .order_by(Device.online.desc(), Device.last_seen_at.desc())
            ).first()
            online = device is not None and device.online
            checkin_id = new_message_id()
            decision = on_flag(
                flag,
                view,
                checkin_id=checkin_id,
                device_online=online,
                now=now,
                policy=self.policy,
            )
            row = session.get(SilenceFlagRow, flag_id)
            assert row is not None  # the runtime stored it before calling us  # noqa: S101
            if isinstance(decision, DispatchForSilence):
                self._dispatch(session, row, decision, now)
                address = None
            else:
                row.status = "checkin"
                row.checkin_id = checkin_id
                row.checkin_due_at = decision.pending.answer_due_at
                assert device is not None  # online implies a device  # noqa: S101
                address = DeviceAddress(household.district, household.id, device.id)
        self._wake_notifier()
        if address is not None and isinstance(decision, AskCheckin):
            self._pending[checkin_id] = (flag_id, decision.pending)
            self._ask(address, decision, now)

    def _ask(self, address: DeviceAddress, decision: AskCheckin, now: dt.datetime) -> None:
        request = CheckinRequest(
            device_ts=now.timestamp(),
            seq=0,
            checkin_id=decision.pending.checkin_id,
            listen_s=decision.listen_s,
            repeats=self.policy.repeats,
            expires_ts=decision.expires_at.timestamp(),
        )
        self.publisher.publish(checkin_command_topic(address), request.to_payload())
        log.info(
            "check-in sent",
            extra={"household_id": address.household, "checkin_id": request.checkin_id},
        )

    def on_answer(self, topic: str, payload: bytes, now: dt.datetime) -> None:
        """An ``event/checkin_answer`` arrived; bad input is logged and dropped."""
        try:
            address, _ = parse_checkin_topic(topic)
            answer = decode_checkin_answer(payload)
        except ContractError as exc:
            log.warning("dropping a malformed check-in answer", extra={"error": str(exc)})
            return
        with self.db.session() as session:
            row = session.scalars(
                select(SilenceFlagRow).where(SilenceFlagRow.checkin_id == answer.checkin_id)
            ).first()
            if row is None or row.household_id != address.household:
                log.warning(
                    "check-in answer matches no flag of this home",
                    extra={"checkin_id": answer.checkin_id, "household_id": address.household},
                )
                return
            if row.status == "closed":  # a copy of an answer already taken (QoS 1)
                log.info("check-in answer for a closed flag", extra={"flag_id": row.id})
                return
            household = session.get(Household, row.household_id)
            assert household is not None  # noqa: S101 - the flag was raised for it
            pending = self._pending_of(row)
            decision = on_answer(
                pending,
                household_view(household),
                checkin_id=answer.checkin_id,
                answered=answer.answered,
                phrase=answer.phrase,
                dispatched=row.status == "dispatched",
                now=now,
                policy=self.policy,
            )
            resumed = _resumed_at(session, row)
            if isinstance(decision, DispatchForSilence) and resumed is not None:
                if _take(session, row, "closed"):
                    row.closed_at = now
                    row.record = f"응답 없음, 그러나 생활 신호 ({resumed.isoformat()})"
            elif isinstance(decision, CloseFlag):
                if _take(session, row, "closed"):
                    row.closed_at, row.record = now, decision.record
                else:  # the window ran out at another collector first: the dispatch stays
                    decision = LateAnswer(
                        decision.household_id, decision.checkin_id, decision.record
                    )
                    session.refresh(row)
                    if row.dispatch_id is not None:
                        self.dispatches.add_note(session, row.dispatch_id, decision.record)
            elif isinstance(decision, DispatchForSilence):
                if _take(session, row, "dispatched"):
                    self._dispatch(session, row, decision, now)
            elif isinstance(decision, LateAnswer) and row.dispatch_id is not None:
                self.dispatches.add_note(session, row.dispatch_id, decision.record)
                row.record = decision.record
            elif isinstance(decision, Ignore):
                log.info("check-in answer ignored", extra={"why": decision.why})
        self._pending.pop(answer.checkin_id, None)
        self._wake_notifier()
        if isinstance(decision, CloseFlag | LateAnswer):
            self.on_life_sign(row.household_id, LifeSignKind.CHECKIN_ANSWER, now)

    def tick(self, now: dt.datetime) -> int:
        """Dispatch every check-in whose window ran out; return how many."""
        opened = 0
        with self.db.session() as session:
            rows = session.scalars(
                select(SilenceFlagRow).where(
                    SilenceFlagRow.status == "checkin", SilenceFlagRow.checkin_due_at <= now
                )
            ).all()
            for row in rows:
                household = session.get(Household, row.household_id)
                pending = self._pending_of(row)
                if household is None or pending is None:
                    continue
                resumed = _resumed_at(session, row)
                if resumed is not None:  # the resident moved (or spoke) while we waited
                    if _take(session, row, "closed"):
                        row.closed_at = now
                        row.record = f"확인 대기 중 생활 신호 ({resumed.isoformat()})"
                    self._pending.pop(row.checkin_id or "", None)
                    continue
                decision = on_tick(pending, household_view(household), now=now, policy=self.policy)
                # Several collectors tick the same rows: one conditional UPDATE decides which
                # of them opens the dispatch.
                if decision is not None and _take(session, row, "dispatched"):
                    self._dispatch(session, row, decision, now)
                    opened += 1
                    self._pending.pop(row.checkin_id or "", None)
        self._wake_notifier()
        return opened

    def _pending_of(self, row: SilenceFlagRow) -> PendingCheckin | None:
        """The pending check-in, from memory or rebuilt from the row (after a restart)."""
        if row.checkin_id is None or row.checkin_due_at is None:
            return None
        kept = self._pending.get(row.checkin_id)
        if kept is not None:
            return kept[1]
        reason = SilenceReason(
            SilenceLimit(row.limit),
            row.stretch_started_at,
            None if row.last_kind is None else LifeSignKind(row.last_kind),
            row.limit_h,
            row.period_h,
        )
        flag = SilenceFlag(row.household_id, row.raised_at, row.due_at, reason)
        asked_at = row.checkin_due_at - dt.timedelta(minutes=self.policy.answer_window_min)
        return PendingCheckin(row.checkin_id, flag, asked_at, row.checkin_due_at)

    def _dispatch(
        self,
        session: Session,
        row: SilenceFlagRow,
        decision: DispatchForSilence,
        now: dt.datetime,
    ) -> None:
        why = f"{decision.reason.describe()}; {decision.checkin}"
        dispatch_id = self.dispatches.open_silence(
            session, decision.household_id, decision.messages, now, why=why
        )
        row.status, row.dispatch_id, row.record = "dispatched", dispatch_id, decision.checkin
        log.warning(
            "silence dispatch opened",
            extra={"household_id": decision.household_id, "dispatch_id": dispatch_id},
        )
        self._notify = True


def _take(session: Session, row: SilenceFlagRow, status: str) -> bool:
    """Move the flag from the status read to ``status``, unless another collector moved it
    first (one conditional UPDATE; on PostgreSQL the loser waits for the winner's commit and
    then matches no row)."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(SilenceFlagRow)
            .where(SilenceFlagRow.id == row.id, SilenceFlagRow.status == row.status)
            .values(status=status)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        log.info(
            "silence flag already moved by another collector",
            extra={"flag_id": row.id, "wanted": status},
        )
        return False
    row.status = status
    return True


def _resumed_at(session: Session, row: SilenceFlagRow) -> dt.datetime | None:
    """A life sign stored after the flagged stretch began, if any (the resident is about)."""
    saved = session.get(HouseholdSilence, row.household_id)
    device_sign = session.scalar(
        select(func.max(Device.last_life_sign_at)).where(Device.household_id == row.household_id)
    )
    signs = [device_sign, None if saved is None else saved.last_life_sign_at]
    later = [t for t in signs if t is not None and t > row.stretch_started_at]
    return max(later) if later else None
