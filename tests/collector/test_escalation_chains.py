"""Escalation chains per kind and district, driven with a fake clock (pure, no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.dispatch import Contact, HouseholdView
from collector.domain.escalation import (
    KINDS,
    ChainStep,
    DispatchState,
    DistrictContacts,
    EscalationBook,
    EscalationChain,
    EscalationPolicy,
    decide_escalation,
    failure_brings_forward,
)
from collector.domain.office_hours import KST, OfficeCalendar
from collector.escalation_config import EscalationConfigError, parse_escalation

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # Tuesday 11:00 KST
CAREGIVER = Contact("caregiver", "김지원", "010-1111-2222", "jiwon@example.org")
BACKUP = Contact("backup", "박민수", "010-5555-6666", None)
GUARDIAN = Contact("guardian", "이보호", "010-3333-4444", None)
SUPERVISOR = Contact("supervisor", "복지정책과", "02-330-1234", "welfare@example.org")
DEPARTMENT = Contact("department", "희망복지지원단", None, "hope@example.org")
EMERGENCY = Contact("emergency", "구 상황실", "02-330-1119", None)
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
HOME = HouseholdView("h1", "seodaemun", "박순자", "연희로 1", CAREGIVER, GUARDIAN, BACKUP)

SOS = EscalationChain(
    (
        ChainStep(("backup",), after_s=180),
        ChainStep(("supervisor",), after_s=180),
        ChainStep(("emergency",), after_s=300),
    )
)
REQUEST = EscalationChain((ChainStep(("supervisor", "department"), working_days=1),))
BOOK = EscalationBook(
    defaults={
        "sos": SOS,
        "silence": EscalationChain(
            (ChainStep(("backup", "guardian"), after_s=900), ChainStep(("supervisor",), 1800))
        ),
        "device_offline": EscalationChain((ChainStep(("department",), after_s=3600),)),
        "request": REQUEST,
    },
    districts={"mapo": {"sos": EscalationChain((ChainStep(("emergency",), after_s=60),))}},
    contacts={
        "seodaemun": DistrictContacts(SUPERVISOR, DEPARTMENT, EMERGENCY),
        "mapo": DistrictContacts(emergency=EMERGENCY),
    },
)
POLICY = EscalationPolicy(staff=STAFF, book=BOOK, calendar=OfficeCalendar())


def run_chain(
    kind: str, household: HouseholdView = HOME, *, until: dt.timedelta = dt.timedelta(days=7)
) -> list[tuple[dt.timedelta, int, set[str]]]:
    """Tick a fake clock every 10 s from the opening and record every escalation."""
    opened = T0
    due = POLICY.first_due_at(household.district, kind, opened)
    state = DispatchState(1, "open", 0, due, opened, kind)
    seen: list[tuple[dt.timedelta, int, set[str]]] = []
    now = opened
    while now <= opened + until:
        step = decide_escalation(state, household, now=now, policy=POLICY)
        if step is not None:
            seen.append((now - opened, step.new_level, {m.recipient_role for m in step.messages}))
            state = DispatchState(1, "open", step.new_level, step.next_due_at, opened, kind)
        now += dt.timedelta(seconds=10)
    return seen


def test_sos_goes_backup_supervisor_emergency_line() -> None:
    assert run_chain("sos") == [
        (dt.timedelta(minutes=3), 1, {"backup"}),
        (dt.timedelta(minutes=6), 2, {"supervisor"}),
        (dt.timedelta(minutes=11), 3, {"emergency"}),
    ]


def test_every_kind_runs_its_own_chain_to_the_end_once() -> None:
    assert [(lvl, who) for _, lvl, who in run_chain("silence")] == [
        (1, {"backup", "guardian"}),
        (2, {"supervisor"}),
    ]
    assert run_chain("device_offline") == [(dt.timedelta(hours=1), 1, {"department"})]
    # Tuesday 11:00 KST + one working day = Wednesday 11:00 KST
    assert run_chain("request") == [(dt.timedelta(days=1), 1, {"supervisor", "department"})]
    for kind in KINDS:
        levels = [lvl for _, lvl, _ in run_chain(kind)]
        assert levels == sorted(set(levels)), f"{kind}: a step was taken twice"


def test_a_request_made_on_friday_evening_escalates_on_monday_evening() -> None:
    friday_evening = dt.datetime(2026, 12, 4, 20, 0, tzinfo=KST)
    due = POLICY.first_due_at("seodaemun", "request", friday_evening)
    assert due == dt.datetime(2026, 12, 7, 18, 0, tzinfo=KST)


def test_a_district_replaces_a_kinds_chain_and_keeps_the_others() -> None:
    mapo = HouseholdView("m1", "mapo", "최", "", CAREGIVER, None, None)
    assert run_chain("sos", mapo) == [(dt.timedelta(minutes=1), 1, {"emergency"})]
    # mapo has no department contact: its device_offline step reaches nobody → staff told
    assert run_chain("device_offline", mapo) == [(dt.timedelta(hours=1), 1, {"staff"})]


def test_a_step_nobody_can_be_reached_in_is_skipped_at_once() -> None:
    alone = HouseholdView("h2", "seodaemun", "최", "", CAREGIVER, None, None)  # no backup
    state = DispatchState(2, "open", 0, T0, T0, "sos")
    step = decide_escalation(state, alone, now=T0, policy=POLICY)
    assert step is not None
    assert step.new_level == 2 and step.skipped == (1,)
    assert {m.recipient_role for m in step.messages} == {"supervisor"}
    assert step.next_due_at == T0 + dt.timedelta(seconds=300)


def test_not_open_or_not_due_never_escalates() -> None:
    for status in ("acknowledged", "on_site", "resolved"):
        state = DispatchState(1, status, 0, T0, T0, "sos")
        assert decide_escalation(state, HOME, now=T0 + dt.timedelta(days=9), policy=POLICY) is None
    state = DispatchState(1, "open", 0, T0, T0, "sos")
    assert decide_escalation(state, HOME, now=T0 - dt.timedelta(seconds=1), policy=POLICY) is None
    done = DispatchState(1, "open", 3, T0, T0, "sos")
    assert decide_escalation(done, HOME, now=T0, policy=POLICY) is None


def test_messages_name_the_kind_and_carry_the_link() -> None:
    state = DispatchState(9, "open", 1, T0, T0 - dt.timedelta(minutes=6), "sos")
    step = decide_escalation(state, HOME, now=T0, policy=POLICY)
    assert step is not None
    [sms, mail] = step.messages
    assert (sms.channel, mail.channel) == ("sms", "email")
    assert "SOS" in sms.subject and "{dispatch_link}" in sms.body and "박순자" not in sms.body
    assert sms.purpose == "escalation-2"


def test_failed_notification_brings_the_next_step_forward() -> None:
    later = T0 + dt.timedelta(minutes=3)
    bring = failure_brings_forward
    assert bring(dispatch_status="open", due_at=later, permanent=True, attempts=1, now=T0) == T0
    assert bring(dispatch_status="open", due_at=later, permanent=False, attempts=3, now=T0) == T0
    assert bring(dispatch_status="open", due_at=later, permanent=False, attempts=1, now=T0) is None
    assert (
        bring(dispatch_status="acknowledged", due_at=later, permanent=True, attempts=1, now=T0)
        is None
    )
    assert bring(dispatch_status="open", due_at=None, permanent=True, attempts=1, now=T0) is None


def test_the_legacy_ladder_is_kept_without_a_book() -> None:
    legacy = EscalationPolicy(repeat_after_s=300, staff=STAFF, first_after_s=60)
    assert legacy.first_due_at("seodaemun", "sos", T0) == T0 + dt.timedelta(seconds=60)
    step = decide_escalation(DispatchState(1, "open", 0, T0, T0), HOME, now=T0, policy=legacy)
    assert step is not None and {m.recipient_role for m in step.messages} == {"guardian", "staff"}


def test_device_offline_has_its_own_default_chain_not_the_legacy_ladder() -> None:
    """Without a file a device-offline dispatch waits two hours, then the backup (or staff,
    when neither backup nor office is configured); the guardian is not alarmed."""
    legacy = EscalationPolicy(repeat_after_s=300, staff=STAFF, first_after_s=60)
    due = legacy.first_due_at("seodaemun", "device_offline", T0)
    assert due == T0 + dt.timedelta(hours=2)
    state = DispatchState(1, "open", 0, due, T0, kind="device_offline")
    step = decide_escalation(state, HOME, now=due, policy=legacy)
    assert step is not None and step.next_due_at is None
    roles = {m.recipient_role for m in step.messages}
    assert "guardian" not in roles and roles <= {"backup", "staff"} and roles
    # A file's own device_offline chain still wins.
    own = EscalationBook(defaults={"device_offline": EscalationChain((ChainStep(("staff",)),))})
    assert EscalationPolicy(book=own).chain_for("seodaemun", "device_offline").steps[0].after_s == 0


def test_the_file_is_read_into_a_book_and_calendar() -> None:
    book, calendar = parse_escalation(
        """
        [office]
        holidays = ["2026-12-25"]
        [chains.sos]
        steps = [{ after_s = 180, notify = ["backup"] }, { after_s = 180, notify = ["supervisor"] }]
        [districts.seodaemun.contacts.supervisor]
        name = "복지정책과"
        phone = "02-330-1234"
        [districts.seodaemun.chains.request]
        steps = [{ working_days = 1, notify = ["supervisor"] }]
        """,
        "chains.toml",
    )
    assert calendar.holidays == frozenset({dt.date(2026, 12, 25)})
    assert book.chain_for("seodaemun", "sos").steps[1].notify == ("supervisor",)
    assert book.chain_for("seodaemun", "request").steps[0].working_days == 1
    contact = book.contacts_for("seodaemun").supervisor
    assert contact is not None and contact.phone == "02-330-1234"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[chains.fire]\nsteps = []", "chains.fire: unknown kind"),
        ('[chains.sos]\nsteps = [{ notify = ["mayor"] }]', "chains.sos: notify="),
        ('[chains.sos]\nsteps = [{ after_s = -1, notify = ["backup"] }]', "after_s"),
        ('[office]\nopens = "19:00"', "office: closes"),
        ("[chains.sos\n", "not valid TOML"),
        ("[district.x]", "district"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(text: str, message: str) -> None:
    with pytest.raises(EscalationConfigError, match=r"^chains\.toml: ") as caught:
        parse_escalation(text, "chains.toml")
    assert message in str(caught.value)
