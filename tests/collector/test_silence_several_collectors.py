"""Two collectors on one PostgreSQL database race for the same silent homes.

Each collector is a real :class:`SilenceRuntime` plus :class:`SilenceFlow` with its own MQTT
connection to a real broker; only the clock is the test's. Both schedule every home (see
docs/silence.md, "Several collectors"), both reach every deadline at the same moment, and the
database decides: the ``silence_flags`` unique row for the flag, one conditional UPDATE for the
move from ``checkin`` to ``dispatched`` or ``closed``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, text

from collector.domain.silence import SilenceFlag
from collector.domain.silence_checkin import CheckinPolicy
from collector.silence_flow import SilenceFlow
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from collector.store.models import Base, Device, Dispatch
from collector.store.silence import SilenceFlagRow
from firmware_config.checkin import CheckinAnswer, checkin_answer_topic
from firmware_config.topics import DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, register_homes
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

pytestmark = pytest.mark.postgres

HOMES = 40


@pytest.fixture
def pg(postgres_database: Database) -> Iterator[Database]:
    """The session's PostgreSQL database, emptied, with ``HOMES`` homes whose device is up."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with postgres_database.engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    register_homes(postgres_database, tuple(f"dev-{n}" for n in range(1, HOMES + 1)))
    with postgres_database.session() as s:
        for device in s.scalars(select(Device)):
            device.online, device.state_changed_at = True, NOW
    yield postgres_database


class CountingPublisher:
    """The collector's side of the broker (QoS 1), counting what it published."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.topics: list[str] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload)
        self.topics.append(topic)


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


class Collector:
    def __init__(self, db: Database, name: str, client: TestClient, clock: Clock) -> None:
        self.publisher = CountingPublisher(client)
        self.flow = SilenceFlow(db, self.publisher, policy=CheckinPolicy(answer_window_min=10))
        self.raised: list[SilenceFlag] = []

        def on_flag(flag: SilenceFlag, flag_id: int) -> None:
            self.raised.append(flag)
            self.flow.on_flag(flag, flag_id)

        self.runtime = SilenceRuntime(
            db,
            on_flag=on_flag,
            settings=SilenceRuntimeSettings(instance_id=name, learn=False),
            clock=clock,
        )
        self.runtime.restore()


def at_once(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.fixture
def collectors(pg: Database, broker: Broker) -> Iterator[tuple[Collector, Collector, Clock]]:
    clock = Clock()
    with (
        TestClient(broker, COLLECTOR_USER).connect() as client_a,
        TestClient(broker, COLLECTOR_USER).connect() as client_b,
    ):
        yield Collector(pg, "a", client_a, clock), Collector(pg, "b", client_b, clock), clock


def test_each_flag_is_raised_asked_and_dispatched_once(
    pg: Database, collectors: tuple[Collector, Collector, Clock]
) -> None:
    a, b, clock = collectors
    clock.at = NOW + dt.timedelta(hours=49)  # every home's 48 h period ran out
    at_once(a.runtime.tick, b.runtime.tick)
    homes = [f.household_id for f in a.raised + b.raised]
    assert sorted(homes) == sorted(f"h-{n}" for n in range(1, HOMES + 1)), "each home once"
    taken = a.runtime.flags_taken_elsewhere + b.runtime.flags_taken_elsewhere
    assert taken == HOMES, "every flag was also reached, and lost, by the other collector"
    assert len(a.publisher.topics) + len(b.publisher.topics) == HOMES, "one check-in a home"
    with pg.session() as s:
        assert [r.status for r in s.scalars(select(SilenceFlagRow))] == ["checkin"] * HOMES

    # Nobody answers; both collectors' scheduler ticks reach the end of every window together.
    clock.at += dt.timedelta(minutes=10)
    opened = at_once(lambda: a.flow.tick(clock.at), lambda: b.flow.tick(clock.at))
    assert sum(int(str(n)) for n in opened) == HOMES
    with pg.session() as s:
        dispatches = s.scalars(select(Dispatch)).all()
        rows = s.scalars(select(SilenceFlagRow)).all()
    assert len(dispatches) == HOMES
    assert len({d.household_id for d in dispatches}) == HOMES, "no home dispatched twice"
    assert {r.dispatch_id for r in rows} == {d.id for d in dispatches}
    # Ticking again, at either collector, opens nothing more.
    assert at_once(lambda: a.flow.tick(clock.at), lambda: b.flow.tick(clock.at)) == [0, 0]


def test_an_answer_at_one_collector_and_the_window_at_the_other_settle_once(
    pg: Database, collectors: tuple[Collector, Collector, Clock]
) -> None:
    """A "네" that arrives at A just as B's tick finds the window over: one of them wins, and
    the flag is either closed (no dispatch) or dispatched with the late answer noted."""
    a, b, clock = collectors
    clock.at = NOW + dt.timedelta(hours=49)
    at_once(a.runtime.tick, b.runtime.tick)
    with pg.session() as s:
        asked = {r.household_id: r.checkin_id for r in s.scalars(select(SilenceFlagRow))}
    at = clock.at + dt.timedelta(minutes=10)  # the last moment the answer counts

    def answer_all() -> None:
        for n in range(1, HOMES + 1):
            home = f"h-{n}"
            reply = CheckinAnswer(
                device_ts=at.timestamp(),
                seq=n,
                checkin_id=asked[home] or "",
                answered=True,
                phrase="네",
                language="ko",
                heard_after_s=2,
            )
            a.flow.on_answer(
                checkin_answer_topic(DeviceAddress(DISTRICT, home, f"dev-{n}")),
                reply.to_payload(),
                at,
            )

    at_once(answer_all, lambda: b.flow.tick(at))
    with pg.session() as s:
        rows = s.scalars(select(SilenceFlagRow)).all()
        dispatches = {d.id: d for d in s.scalars(select(Dispatch))}
    assert {r.status for r in rows} <= {"closed", "dispatched"}
    for row in rows:
        if row.status == "closed":
            assert row.dispatch_id is None and row.record and "네" in row.record
        else:
            dispatch = dispatches[row.dispatch_id or -1]
            assert dispatch.note and "네" in dispatch.note, "the caregiver hears it was answered"
    assert len(dispatches) == sum(r.status == "dispatched" for r in rows)
    assert len({d.household_id for d in dispatches.values()}) == len(dispatches)
