"""The dispatch lifecycle, driven by events alone: every (state, event) pair of the table."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import String

from collector.domain.lifecycle import (
    PAGE_OUTCOMES,
    TRANSITIONS,
    Acknowledge,
    AddNote,
    ArriveOnSite,
    Event,
    InvalidTransition,
    Lifecycle,
    Outcome,
    Resolve,
    Stage,
    Status,
    Step,
    acknowledge,
    apply,
    resolve,
    stage_of,
    timeline,
)
from collector.store.models import Dispatch, DispatchStatus

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=3)
T2 = T0 + dt.timedelta(minutes=40)

OPEN = Lifecycle()
ACKED = Lifecycle(Status.ACKNOWLEDGED, acknowledged_at=T0, acknowledged_by="김미영")
RESOLVED = Lifecycle(
    Status.RESOLVED,
    acknowledged_at=T0,
    acknowledged_by="김미영",
    resolved_at=T1,
    outcome=Outcome.PHONED_OK,
    note="통화함",
)
ON_SITE = Lifecycle(
    Status.ON_SITE,
    acknowledged_at=T0,
    acknowledged_by="김미영",
    on_site_at=T1,
    on_site_by="김미영",
)
STATES = {
    Status.OPEN: OPEN,
    Status.ACKNOWLEDGED: ACKED,
    Status.ON_SITE: ON_SITE,
    Status.RESOLVED: RESOLVED,
}
EVENTS: list[Event] = [
    Acknowledge("박정호"),
    ArriveOnSite("박정호"),
    Resolve(Outcome.VISITED_OK, "괜찮으심", "박정호"),
    AddNote("열쇠는 경비실", "박정호"),
]

ALLOWED = {
    (Status.OPEN, Acknowledge): Status.ACKNOWLEDGED,
    (Status.OPEN, ArriveOnSite): Status.ON_SITE,
    (Status.OPEN, Resolve): Status.RESOLVED,
    (Status.ACKNOWLEDGED, ArriveOnSite): Status.ON_SITE,
    (Status.ACKNOWLEDGED, Resolve): Status.RESOLVED,
    (Status.ON_SITE, Resolve): Status.RESOLVED,
    **{(s, AddNote): s for s in Status},
}


def test_the_table_is_exactly_the_documented_rules() -> None:
    flat = {(s, e): t for s, row in TRANSITIONS.items() for e, t in row.items()}
    assert flat == ALLOWED
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(
    ("status", "event"), list(itertools.product(Status, EVENTS)), ids=lambda v: str(v)
)
def test_every_state_and_event(status: Status, event: Event) -> None:
    before = STATES[status]
    target = ALLOWED.get((status, type(event)))
    if target is None:
        assert not before.allows(event)
        with pytest.raises(InvalidTransition) as caught:
            apply(before, event, now=T2)
        assert caught.value.status is status
        assert caught.value.event is event
        assert str(caught.value).startswith("cannot ")
    else:
        assert before.allows(event)
        after = apply(before, event, now=T2)
        assert after.status is target
        assert before == STATES[status], "the old state is never changed"


def test_acknowledge_records_who_and_when_and_stops_escalation() -> None:
    after = acknowledge(OPEN, by="  박정호 ", now=T1)
    assert after == Lifecycle(Status.ACKNOWLEDGED, acknowledged_at=T1, acknowledged_by="박정호")
    assert OPEN.escalates
    assert not after.escalates


def test_resolve_from_open_implies_acknowledgement() -> None:
    after = resolve(OPEN, outcome=Outcome.FALSE_ALARM, note=None, by="박정호", now=T1)
    assert after.status is Status.RESOLVED
    assert (after.acknowledged_at, after.acknowledged_by) == (T1, "박정호")
    assert (after.resolved_at, after.outcome, after.note) == (T1, Outcome.FALSE_ALARM, None)
    assert not after.escalates


def test_resolve_from_open_without_a_name_still_acknowledges() -> None:
    after = resolve(OPEN, outcome=Outcome.OTHER, note="관리사무소 확인", now=T1)
    assert (after.acknowledged_at, after.acknowledged_by) == (T1, None)


def test_resolved_by_the_collector_itself_records_no_acknowledgement() -> None:
    event = Resolve(Outcome.DEVICE_PROBLEM, "기기 다시 연결됨", "anbu", by_itself=True)
    after = apply(OPEN, event, now=T1)
    assert after.status is Status.RESOLVED and not after.escalates
    assert (after.acknowledged_at, after.acknowledged_by) == (None, None)
    assert (after.resolved_at, after.resolved_by) == (T1, "anbu")
    # Somebody had it already: their acknowledgement stays.
    assert apply(ACKED, event, now=T2).acknowledged_at == T0


def test_resolve_after_acknowledge_keeps_the_first_acknowledgement() -> None:
    after = resolve(ACKED, outcome=Outcome.TAKEN_TO_HOSPITAL, note=" 구급차 ", by="이순신", now=T2)
    assert (after.acknowledged_at, after.acknowledged_by) == (T0, "김미영")
    assert after.resolved_at == T2
    assert (after.outcome, after.note) == (Outcome.TAKEN_TO_HOSPITAL, "구급차")


def test_blank_note_is_stored_as_none() -> None:
    assert resolve(ACKED, outcome=Outcome.PHONED_OK, note="   ", now=T1).note is None


def test_outcome_given_as_its_string_value_is_accepted() -> None:
    after = apply(ACKED, Resolve("visited_ok"), now=T1)  # type: ignore[arg-type]
    assert after.outcome is Outcome.VISITED_OK


def test_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="nap"):
        apply(ACKED, Resolve("nap"), now=T1)  # type: ignore[arg-type]


def test_second_acknowledge_names_who_already_has_it() -> None:
    with pytest.raises(InvalidTransition, match="already acknowledged by 김미영 at 2024-05-01"):
        acknowledge(ACKED, by="박정호", now=T1)


def test_resolved_is_final_and_says_how_it_ended() -> None:
    final = r"cannot resolve .* already resolved \(phoned_ok\)"
    with pytest.raises(InvalidTransition, match=final):
        resolve(RESOLVED, outcome=Outcome.OTHER, now=T2)
    with pytest.raises(InvalidTransition, match="cannot acknowledge"):
        acknowledge(RESOLVED, by="박정호", now=T2)


@pytest.mark.parametrize("by", ["", "   "])
def test_acknowledge_needs_a_name(by: str) -> None:
    with pytest.raises(ValueError, match="by must name the person"):
        acknowledge(OPEN, by=by, now=T1)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        acknowledge(OPEN, by="박정호", now=dt.datetime(2024, 5, 1, 9, 0))


def test_statuses_match_the_stored_ones() -> None:
    assert [s.value for s in Status] == [s.value for s in DispatchStatus]


def test_every_outcome_fits_the_outcome_column() -> None:
    column_type = Dispatch.__table__.c.outcome.type
    assert isinstance(column_type, String)
    length = column_type.length
    assert length is not None
    assert all(len(o.value) <= length for o in Outcome)


def test_arriving_without_acknowledging_first_implies_it() -> None:
    after = apply(OPEN, ArriveOnSite(" 박정호 "), now=T1)
    assert after.status is Status.ON_SITE
    assert (after.acknowledged_at, after.acknowledged_by) == (T1, "박정호")
    assert (after.on_site_at, after.on_site_by) == (T1, "박정호")
    assert not after.escalates


def test_arriving_after_acknowledge_keeps_who_acknowledged() -> None:
    after = apply(ACKED, ArriveOnSite("이순신"), now=T2)
    assert (after.acknowledged_at, after.acknowledged_by) == (T0, "김미영")
    assert (after.on_site_at, after.on_site_by) == (T2, "이순신")


def test_nobody_arrives_twice_and_the_message_says_who_is_there() -> None:
    with pytest.raises(
        InvalidTransition, match=r"cannot mark on site .*\(김미영\) is already on site"
    ):
        apply(ON_SITE, ArriveOnSite("박정호"), now=T2)


def test_resolve_records_who_resolved() -> None:
    after = apply(ON_SITE, Resolve(Outcome.HELP_GIVEN, "장 봐드림", "박정호"), now=T2)
    assert (after.resolved_by, after.resolved_at, after.outcome) == (
        "박정호",
        T2,
        Outcome.HELP_GIVEN,
    )
    assert (after.on_site_at, after.on_site_by) == (T1, "김미영")


@pytest.mark.parametrize("status", list(Status))
def test_a_note_changes_nothing_in_any_state(status: Status) -> None:
    assert apply(STATES[status], AddNote("약 챙겨드림", "박정호"), now=T2) == STATES[status]


@pytest.mark.parametrize(("note", "by"), [("  ", "박정호"), ("약", " ")])
def test_a_note_needs_text_and_a_name(note: str, by: str) -> None:
    with pytest.raises(ValueError, match=r"empty|by must name"):
        apply(OPEN, AddNote(note, by), now=T1)


def test_stage_tells_raised_from_notified() -> None:
    assert stage_of(OPEN, notified_at=None) is Stage.RAISED
    assert stage_of(OPEN, notified_at=T0) is Stage.NOTIFIED
    assert stage_of(ACKED, notified_at=None) is Stage.ACKNOWLEDGED
    assert stage_of(ON_SITE, notified_at=T0) is Stage.ON_SITE
    assert stage_of(RESOLVED, notified_at=T0) is Stage.RESOLVED


def test_timeline_lists_every_stage_reached_in_order_with_who() -> None:
    raised = T0 - dt.timedelta(minutes=1)
    sent = T0 - dt.timedelta(seconds=30)
    done = apply(ON_SITE, Resolve(Outcome.SAFE, None, "김미영"), now=T2)
    assert timeline(done, raised_at=raised, notified_at=sent) == (
        Step(Stage.RAISED, raised),
        Step(Stage.NOTIFIED, sent),
        Step(Stage.ACKNOWLEDGED, T0, "김미영"),
        Step(Stage.ON_SITE, T1, "김미영"),
        Step(Stage.RESOLVED, T2, "김미영"),
    )
    assert timeline(OPEN, raised_at=raised, notified_at=None) == (Step(Stage.RAISED, raised),)


def test_the_page_offers_the_issues_eight_outcomes() -> None:
    assert [o.value for o in PAGE_OUTCOMES] == [
        "safe",
        "help_given",
        "taken_to_hospital",
        "door_opened",
        "false_alarm",
        "test",
        "device_problem",
        "deceased",
    ]
