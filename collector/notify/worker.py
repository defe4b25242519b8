"""Delivers the ``notifications`` table: claims what is due, sends it, records what happened.

The table is the queue, so a notification survives a restart and two collectors can share the
work. Life of a row::

    pending ──claim──▶ sending ──sent──▶ sent
       ▲                  │ └─permanent error, or last attempt once not open──▶ failed
       └──transient error─┘   (next_attempt_at = now + backoff, see retry.py)

While its dispatch is open a notification is never given up on a transient error, and once it has
gone undelivered for ``UndeliveredPolicy.escalate_after_s`` the district staff are told through
their other channels (undelivered.py). :meth:`NotificationWorker.health` reports failing channels
and the age of the oldest undelivered notification for ``/health`` and ``/metrics``.

Claiming is a conditional ``UPDATE … WHERE status IN ('pending','sending') AND next_attempt_at
<= now``, the same on SQLite and PostgreSQL: of two collectors only one sees the row change.
A claim sets ``next_attempt_at`` to the end of a lease (``lease_s``) and counts the attempt, so if
the collector dies mid-send, another one picks the row up once the lease has run out, and the
attempt number doubles as a fencing token: a worker whose lease was taken over cannot overwrite
the newer attempt's outcome. An attempt that was under way when its collector died may have been
delivered, so a recipient can occasionally get a message twice; never zero times.

Each channel has its own small thread pool, so an e-mail never queues behind a slow SMS gateway,
and the worker only claims as many rows as it has free threads: what it cannot start now stays
available to the other collector.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from collector.domain.dispatch import Message
from collector.domain.escalation import failure_brings_forward
from collector.notify.base import Notifier, NotifyError
from collector.notify.retry import RetryPolicy, next_attempt_at
from collector.notify.undelivered import (
    FALLBACK_PREFIX,
    Undelivered,
    UndeliveredPolicy,
    fallback_messages,
)
from collector.store.db import Database
from collector.store.models import Dispatch, DispatchStatus, Notification, NotificationStatus

_LOG = logging.getLogger(__name__)

PENDING, SENDING = NotificationStatus.PENDING, NotificationStatus.SENDING
SENT, FAILED = NotificationStatus.SENT, NotificationStatus.FAILED

_CHANNEL_NAMES = {"email": "e-mail", "sms": "SMS"}
_MAX_ERROR_CHARS = 1000
_FALLBACK_BATCH = 100


@dataclass(slots=True)
class ChannelHealth:
    """What the last attempts on one channel did (this process's view)."""

    consecutive_failures: int = 0
    last_error: str | None = None
    last_failure_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def as_dict(self) -> dict[str, Any]:
        def iso(ts: dt.datetime | None) -> str | None:
            return None if ts is None else ts.isoformat()

        return {
            "failing": self.failing,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_failure_at": iso(self.last_failure_at),
            "last_success_at": iso(self.last_success_at),
        }


def notification_reference(dispatch_id: int | None, notification_id: int) -> str:
    """The reference a notifier puts on the message; the same on every retry. A notification
    with no dispatch (an unanswered text's) is ``text.notification-N``."""
    about = "text" if dispatch_id is None else f"dispatch-{dispatch_id}"
    return f"{about}.notification-{notification_id}"


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    dispatch_id: int | None
    channel: str
    recipient: str
    subject: str
    body: str
    attempt: int
    """This attempt's number, from 1; the row is ours while ``attempts`` still equals it."""
    created_at: dt.datetime


class NotificationWorker:
    """Sends due notifications on a background thread until stopped.

    ``notifiers`` maps a channel name ("email", "sms") to its notifier; a notification on a
    channel with no notifier is marked failed with the reason, never dropped silently.
    ``clock`` returns the aware UTC time used for every timestamp written. ``threads`` is per
    channel: up to that many e-mails and that many SMS are sent at once. ``lease_s`` must exceed
    the longest a send can take (the notifiers' timeouts), or a slow send may be repeated.

    Example::

        worker = NotificationWorker(db, {"email": smtp, "sms": sms}, max_attempts=8,
                                    clock=lambda: dt.datetime.now(dt.UTC))
        worker.start()
        ...                      # store a dispatch and its notifications, then
        worker.wake()            # deliver them now rather than at the next poll
        worker.stop()
    """

    def __init__(
        self,
        db: Database,
        notifiers: Mapping[str, Notifier],
        *,
        max_attempts: int,
        clock: Callable[[], dt.datetime],
        threads: int = 4,
        poll_interval_s: float = 0.5,
        lease_s: float = 60.0,
        first_retry_delay_s: float = 2.0,
        max_retry_delay_s: float = 300.0,
        undelivered: UndeliveredPolicy | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be at least 1")
        if lease_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lease_s and poll_interval_s must be positive")
        for channel, notifier in notifiers.items():
            if notifier.channel != channel:
                raise ValueError(
                    f"notifier for {channel!r} says its channel is {notifier.channel!r}"
                )
        self._db = db
        self._notifiers = dict(notifiers)
        self._policy = RetryPolicy(max_attempts, first_retry_delay_s, max_retry_delay_s)
        self.undelivered = undelivered or UndeliveredPolicy()
        self._channels = {channel: ChannelHealth() for channel in self._notifiers}
        self._clock = clock
        self.threads = threads
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._in_flight = dict.fromkeys(self._notifiers, 0)
        self._saturated = dict.fromkeys(self._notifiers, False)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling (the first poll is immediate)."""
        if self._thread is not None:
            raise RuntimeError("notification worker already started")
        if self._clock().utcoffset() != dt.timedelta(0):
            raise ValueError("clock must return timezone-aware UTC datetimes")
        self._pools = {
            channel: ThreadPoolExecutor(self.threads, thread_name_prefix=f"anbu-notify-{channel}")
            for channel in self._notifiers
        }
        self._thread = threading.Thread(target=self._run, name="anbu-notify-poll", daemon=True)
        self._thread.start()
        _LOG.info(
            "notification worker started",
            extra={
                "event": "notify_worker_started",
                "channels": sorted(self._notifiers),
                "threads": self.threads,
            },
        )

    def stop(self) -> None:
        """Stop polling and wait for the sends under way (each bounded by its timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        _LOG.info("notification worker stopped", extra={"event": "notify_worker_stopped"})

    def wake(self) -> None:
        """Something was just stored (an SOS): look for due notifications now."""
        self._wake.set()

    def counts(self) -> dict[str, int]:
        """Notifications per status, every status present: for the health endpoint."""
        totals = {status.value: 0 for status in NotificationStatus}
        with self._db.session() as session:
            rows = session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        for status, count in rows:
            totals[str(status)] = int(count)
        return totals

    def health(self) -> dict[str, Any]:
        """Failing channels, per-channel state and the oldest undelivered notification's age.

        ``degraded`` is true when a channel's last attempt failed or a notification has waited
        longer than the escalation time.
        """
        now = self._clock()
        with self._db.session() as session:
            oldest = session.scalar(
                select(func.min(Notification.created_at)).where(
                    Notification.status.in_([PENDING, SENDING])
                )
            )
        age_s = None if oldest is None else max(0.0, (now - oldest).total_seconds())
        with self._lock:
            channels = {name: state.as_dict() for name, state in self._channels.items()}
        failing = sorted(name for name, state in channels.items() if state["failing"])
        late = age_s is not None and age_s > self.undelivered.escalate_after_s
        return {
            "degraded": bool(failing) or late,
            "failing_channels": failing,
            "channels": channels,
            "oldest_undelivered_age_s": None if age_s is None else round(age_s, 1),
            "escalate_after_s": self.undelivered.escalate_after_s,
        }

    # -- polling ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before polling, so a wake() that arrives during the poll is not lost.
            self._wake.clear()
            try:
                self._poll_once()
            except Exception:
                _LOG.exception("notification poll failed", extra={"event": "notify_poll_failed"})
            self._wake.wait(self.poll_interval_s)

    def _poll_once(self) -> int:
        """Settle unsendable rows and start sending what is due; how many sends were started."""
        now = self._clock()
        # What is due is sent first: an SOS's notifications do not wait for the bookkeeping.
        started = 0
        for channel in self._notifiers:
            started += self._fill(channel, now)
        self._fail_unconfigured(now)
        self._fail_exhausted(now)
        self._escalate_undelivered(now)
        return started

    def _fill(self, channel: str, now: dt.datetime) -> int:
        started = 0
        while not self._stopping.is_set():
            with self._lock:
                free = self.threads - self._in_flight[channel]
                self._saturated[channel] = free <= 0
            if free <= 0:
                break
            candidates = self._due_ids(channel, free, now)
            if not candidates:
                break
            for claimed in self._claim(candidates, now):
                with self._lock:
                    self._in_flight[channel] += 1
                self._pools[channel].submit(self._deliver, claimed)
                started += 1
            if len(candidates) < free:
                break  # nothing more is due; otherwise go round: more may be waiting
        return started

    def _due_ids(self, channel: str, limit: int, now: dt.datetime) -> list[int]:
        with self._db.session() as session:
            ids = session.scalars(
                select(Notification.id)
                .where(
                    Notification.channel == channel,
                    _due(now),
                    or_(
                        Notification.attempts < self._policy.max_attempts,
                        Notification.dispatch_id.in_(_open_dispatch_ids()),
                    ),
                )
                .order_by(Notification.created_at, Notification.id)
                .limit(limit)
            ).all()
        return list(ids)

    def _claim(self, ids: Sequence[int], now: dt.datetime) -> list[_Claimed]:
        """The rows among ``ids`` this worker won; the others were claimed by someone else."""
        lease_until = now + dt.timedelta(seconds=self.lease_s)
        with self._db.session() as session:
            won = [
                notification_id
                for notification_id in ids
                if _changed(
                    session,
                    update(Notification)
                    .where(Notification.id == notification_id, _due(now))
                    .values(
                        status=SENDING,
                        attempts=Notification.attempts + 1,
                        next_attempt_at=lease_until,
                    ),
                )
            ]
            if not won:
                return []
            rows = session.scalars(
                select(Notification)
                .where(Notification.id.in_(won))
                .order_by(Notification.created_at, Notification.id)
            ).all()
            return [
                _Claimed(
                    id=row.id,
                    dispatch_id=row.dispatch_id,
                    channel=row.channel,
                    recipient=row.recipient,
                    subject=row.subject,
                    body=row.body,
                    attempt=row.attempts,
                    created_at=row.created_at,
                )
                for row in rows
            ]

    def _fail_unconfigured(self, now: dt.datetime) -> None:
        with self._db.session() as session:
            rows = session.execute(
                select(Notification.id, Notification.dispatch_id, Notification.channel).where(
                    _due(now), Notification.channel.not_in(list(self._notifiers))
                )
            ).all()
            for notification_id, dispatch_id, channel in rows:
                reason = f"no {_CHANNEL_NAMES.get(channel, channel)} notifier configured"
                statement = (
                    update(Notification)
                    .where(Notification.id == notification_id, _due(now))
                    .values(status=FAILED, last_error=reason, next_attempt_at=now)
                )
                if _changed(session, statement):
                    _LOG.error(
                        "notification failed: channel not configured",
                        extra={
                            "event": "notification_failed",
                            "notification_id": notification_id,
                            "dispatch_id": dispatch_id,
                            "channel": channel,
                            "error": reason,
                        },
                    )

    def _fail_exhausted(self, now: dt.datetime) -> None:
        """Rows out of attempts: an abandoned last attempt, or a lowered ``max_attempts``."""
        with self._db.session() as session:
            rows = session.execute(
                select(
                    Notification.id,
                    Notification.dispatch_id,
                    Notification.channel,
                    Notification.status,
                    Notification.attempts,
                    Notification.last_error,
                ).where(
                    _due(now),
                    Notification.channel.in_(list(self._notifiers)),
                    Notification.attempts >= self._policy.max_attempts,
                    or_(
                        Notification.dispatch_id.is_(None),
                        Notification.dispatch_id.not_in(_open_dispatch_ids()),
                    ),
                )
            ).all()
            for notification_id, dispatch_id, channel, status, attempts, last_error in rows:
                reason = f"gave up after {attempts} attempts"
                if status == SENDING:
                    reason += ": the last one never reported back (its lease expired)"
                elif last_error:
                    reason += f": {last_error}"
                statement = (
                    update(Notification)
                    .where(
                        Notification.id == notification_id,
                        Notification.attempts == attempts,
                        _due(now),
                    )
                    .values(status=FAILED, last_error=reason[:_MAX_ERROR_CHARS])
                )
                if _changed(session, statement):
                    _LOG.error(
                        "notification failed: attempts exhausted",
                        extra={
                            "event": "notification_failed",
                            "notification_id": notification_id,
                            "dispatch_id": dispatch_id,
                            "channel": channel,
                            "attempt": attempts,
                            "error": reason,
                        },
                    )

    def _escalate_undelivered(self, now: dt.datetime) -> None:
        """Tell the staff about notifications of open dispatches undelivered for too long."""
        if self.undelivered.staff is None:
            return
        cutoff = now - dt.timedelta(seconds=self.undelivered.escalate_after_s)
        fallback = aliased(Notification)
        already_escalated = exists().where(
            fallback.dispatch_id == Notification.dispatch_id,
            fallback.purpose == literal(FALLBACK_PREFIX) + cast(Notification.id, String),
        )
        with self._db.session() as session:
            rows = session.execute(
                select(
                    Notification.id,
                    Notification.dispatch_id,
                    Notification.channel,
                    Notification.recipient_role,
                    Notification.recipient,
                    Notification.purpose,
                    Notification.created_at,
                )
                .where(
                    Notification.status.in_([PENDING, SENDING, FAILED]),
                    Notification.created_at <= cutoff,
                    Notification.purpose.not_like(f"{FALLBACK_PREFIX}%"),
                    Notification.dispatch_id.in_(_open_dispatch_ids()),
                    ~already_escalated,
                )
                .order_by(Notification.created_at, Notification.id)
                .limit(_FALLBACK_BATCH)
            ).all()
        for row in rows:
            n_id, dispatch_id, channel, role, recipient, purpose, created_at = row
            # The query keeps open dispatches' notifications only: there is a dispatch.
            assert dispatch_id is not None  # noqa: S101
            undelivered = Undelivered(
                n_id, dispatch_id, channel, role, recipient, purpose, created_at, True
            )
            messages = fallback_messages(undelivered, now=now, policy=self.undelivered)
            added = self._add_messages(undelivered.dispatch_id, messages, now)
            if added:
                _LOG.error(
                    "notification undelivered: district staff told",
                    extra={
                        "event": "notification_escalated",
                        "notification_id": undelivered.id,
                        "dispatch_id": undelivered.dispatch_id,
                        "channel": undelivered.channel,
                        "waited_s": round((now - undelivered.created_at).total_seconds(), 1),
                        "fallback_channels": added,
                    },
                )
        if rows:
            self._wake.set()

    def _add_messages(
        self, dispatch_id: int, messages: Sequence[Message], now: dt.datetime
    ) -> list[str]:
        """Store ``messages`` as pending notifications; another collector's copies are skipped."""
        added: list[str] = []
        with self._db.session() as session:
            for message in messages:
                try:
                    with session.begin_nested():
                        session.add(
                            Notification(
                                dispatch_id=dispatch_id,
                                channel=message.channel,
                                purpose=message.purpose,
                                recipient_role=message.recipient_role,
                                recipient=message.recipient,
                                subject=message.subject,
                                body=message.body,
                                status=PENDING,
                                attempts=0,
                                created_at=now,
                                next_attempt_at=now,
                            )
                        )
                    added.append(message.channel)
                except IntegrityError:
                    continue  # another collector stored the same fallback first
        return added

    # -- sending (pool threads) ---------------------------------------------------------------

    def _deliver(self, claimed: _Claimed) -> None:
        try:
            notifier = self._notifiers[claimed.channel]
            reference = notification_reference(claimed.dispatch_id, claimed.id)
            started = time.monotonic()
            error: NotifyError | None = None
            try:
                notifier.send(claimed.recipient, claimed.subject, claimed.body, reference=reference)
            except NotifyError as e:
                error = e
            except Exception as e:
                _LOG.exception(
                    "notifier raised an unexpected error",
                    extra={"event": "notifier_crashed", "notification_id": claimed.id},
                )
                error = NotifyError(f"unexpected {type(e).__name__}: {e}", permanent=False)
            send_ms = round((time.monotonic() - started) * 1000, 1)
            self._record(claimed, error, send_ms)
        except Exception:
            _LOG.exception(
                "could not record a notification's outcome; it is retried after its lease",
                extra={"event": "notify_record_failed", "notification_id": claimed.id},
            )
        finally:
            with self._lock:
                self._in_flight[claimed.channel] -= 1
                more_waiting = self._saturated[claimed.channel]
            if more_waiting:
                self._wake.set()

    def _record(self, claimed: _Claimed, error: NotifyError | None, send_ms: float) -> None:
        now = self._clock()
        log: dict[str, Any] = {
            "notification_id": claimed.id,
            "dispatch_id": claimed.dispatch_id,
            "channel": claimed.channel,
            "attempt": claimed.attempt,
            "send_ms": send_ms,
        }
        if error is None:
            values: dict[str, Any] = {"status": SENT, "sent_at": now}
            log |= {
                "event": "notification_sent",
                "since_created_ms": round((now - claimed.created_at).total_seconds() * 1000, 1),
            }
            message, level = "notification sent", logging.INFO
        else:
            retry_at = next_attempt_at(
                attempts=claimed.attempt,
                permanent=error.permanent,
                now=now,
                policy=self._policy,
                retry_after_s=error.retry_after_s,
                dispatch_open=self._dispatch_open(claimed.dispatch_id),
            )
            text = error.message
            if retry_at is None and not error.permanent:
                text = f"gave up after {claimed.attempt} attempts: {text}"
            values = {"last_error": text[:_MAX_ERROR_CHARS]}
            log |= {"error": error.message, "permanent": error.permanent}
            if retry_at is None:
                values |= {"status": FAILED, "next_attempt_at": now}
                log["event"] = "notification_failed"
                message, level = "notification failed", logging.ERROR
            else:
                values |= {"status": PENDING, "next_attempt_at": retry_at}
                log |= {"event": "notification_retry", "retry_at": retry_at.isoformat()}
                message, level = "notification will be retried", logging.WARNING
        statement = (
            update(Notification)
            .where(
                Notification.id == claimed.id,
                Notification.status == SENDING,
                Notification.attempts == claimed.attempt,
            )
            .values(**values)
        )
        self._note_outcome(claimed.channel, error, now)
        if self._write_with_retries(statement):
            _LOG.log(level, message, extra=log)
            if error is not None:
                self._bring_escalation_forward(claimed, error, now)
        else:
            _LOG.warning(
                "notification outcome not recorded: another worker took it over",
                extra=log | {"event": "notification_lease_lost"},
            )

    def _note_outcome(self, channel: str, error: NotifyError | None, now: dt.datetime) -> None:
        with self._lock:
            state = self._channels[channel]
            if error is None:
                state.consecutive_failures = 0
                state.last_success_at = now
            else:
                state.consecutive_failures += 1
                state.last_error = error.message[:_MAX_ERROR_CHARS]
                state.last_failure_at = now

    def _bring_escalation_forward(
        self, claimed: _Claimed, error: NotifyError, now: dt.datetime
    ) -> None:
        """A failed notification escalates: the dispatch's next chain step becomes due now."""
        if claimed.dispatch_id is None:
            return
        with self._db.session() as session:
            row = session.execute(
                select(Dispatch.status, Dispatch.next_escalation_at).where(
                    Dispatch.id == claimed.dispatch_id
                )
            ).first()
            if row is None:
                return
            due = failure_brings_forward(
                dispatch_status=row.status.value,
                due_at=row.next_escalation_at,
                permanent=error.permanent,
                attempts=claimed.attempt,
                now=now,
            )
            if due is None:
                return
            moved = _changed(
                session,
                update(Dispatch)
                .where(
                    Dispatch.id == claimed.dispatch_id,
                    Dispatch.status == DispatchStatus.OPEN,
                    Dispatch.next_escalation_at == row.next_escalation_at,
                )
                .values(next_escalation_at=due),
            )
        if moved:
            _LOG.warning(
                "notification failed: next escalation step brought forward",
                extra={
                    "event": "escalation_brought_forward",
                    "notification_id": claimed.id,
                    "dispatch_id": claimed.dispatch_id,
                    "was_due_at": row.next_escalation_at.isoformat(),
                },
            )

    def _dispatch_open(self, dispatch_id: int | None) -> bool:
        if dispatch_id is None:
            return False
        with self._db.session() as session:
            status = session.scalar(select(Dispatch.status).where(Dispatch.id == dispatch_id))
        return status == DispatchStatus.OPEN

    def _write_with_retries(self, statement: Any, tries: int = 3) -> bool:
        """Run one UPDATE, retrying briefly if the database is busy; whether a row changed."""
        for attempt in range(1, tries + 1):
            try:
                with self._db.session() as session:
                    return _changed(session, statement)
            except SQLAlchemyError:
                if attempt == tries:
                    raise
                time.sleep(0.1 * attempt)
        return False


def _due(now: dt.datetime) -> ColumnElement[bool]:
    """Waiting and due, or claimed by a worker whose lease has run out."""
    return and_(Notification.status.in_([PENDING, SENDING]), Notification.next_attempt_at <= now)


def _open_dispatch_ids() -> Any:
    return select(Dispatch.id).where(Dispatch.status == DispatchStatus.OPEN)


def _changed(session: Session, statement: Any) -> bool:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)
