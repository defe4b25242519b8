import datetime as dt

from collector.domain.dispatch import Contact, HouseholdView
from collector.domain.escalation import DispatchState, EscalationPolicy, decide_escalation

T0 = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
GUARDIAN = Contact("guardian", "이보호", "010-3333-4444", None)
STAFF = Contact("staff", "동주민센터", "02-330-1234", "staff@example.org")
HOME = HouseholdView("h1", "seodaemun", "박순자", "연희로 1", None, GUARDIAN)
POLICY = EscalationPolicy(repeat_after_s=300, staff=STAFF)


def state(status: str = "open", level: int = 0, due: dt.datetime | None = T0) -> DispatchState:
    return DispatchState(1, status, level, due, T0 - dt.timedelta(seconds=60))


def test_nothing_before_the_deadline() -> None:
    assert decide_escalation(state(), HOME, now=T0 - dt.timedelta(seconds=1), policy=POLICY) is None


def test_first_step_tells_guardian_and_staff() -> None:
    step = decide_escalation(state(), HOME, now=T0, policy=POLICY)
    assert step is not None and step.new_level == 1
    assert step.next_due_at == T0 + dt.timedelta(seconds=300)
    assert {(m.recipient_role, m.channel) for m in step.messages} == {
        ("guardian", "sms"),
        ("staff", "sms"),
        ("staff", "email"),
    }
    assert all(m.purpose == "escalation-1" and "60초" in m.body for m in step.messages)


def test_second_step_is_staff_only_and_last() -> None:
    step = decide_escalation(state(level=1), HOME, now=T0, policy=POLICY)
    assert step is not None and step.new_level == 2 and step.next_due_at is None
    assert {m.recipient_role for m in step.messages} == {"staff"}
    assert decide_escalation(state(level=2), HOME, now=T0, policy=POLICY) is None


def test_acknowledged_resolved_or_undated_dispatches_never_escalate() -> None:
    for s in (state("acknowledged"), state("resolved"), state(due=None)):
        assert decide_escalation(s, HOME, now=T0 + dt.timedelta(days=1), policy=POLICY) is None
