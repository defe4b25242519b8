import datetime as dt

from collector.domain.dispatch import (
    Contact,
    DispatchPolicy,
    HouseholdView,
    OpenDispatchView,
    decide_cancel,
    decide_sos,
)

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
CAREGIVER = Contact("caregiver", "김지원", "010-1111-2222", "jiwon@example.org")
GUARDIAN = Contact("guardian", "이보호", "010-3333-4444", None)
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
HOME = HouseholdView("h0001", "seodaemun", "박순자", "연희로 1", CAREGIVER, GUARDIAN)
POLICY = DispatchPolicy(ack_timeout_s=60, staff=STAFF, dashboard_url="https://anbu.example")


def test_sos_opens_an_urgent_dispatch_and_tells_caregiver_and_guardian() -> None:
    d = decide_sos(
        HOME, None, source="button", phrase=None, message_id="a" * 32, now=NOW, policy=POLICY
    )
    assert d.open_new and d.existing_dispatch_id is None
    assert d.escalate_at == NOW + dt.timedelta(seconds=60)
    sent = {(m.channel, m.recipient_role, m.recipient) for m in d.messages}
    assert sent == {
        ("sms", "caregiver", "010-1111-2222"),
        ("email", "caregiver", "jiwon@example.org"),
        ("sms", "guardian", "010-3333-4444"),
    }
    assert all(m.purpose == "sos" for m in d.messages)
    for m in d.messages:
        if m.recipient_role == "caregiver":
            assert "가구 h0001" in m.subject and "SOS 버튼" in m.body
            assert m.body.endswith("{dispatch_link}")
        else:  # the guardian: own wording, no link (no login)
            assert "담당 생활지원사에게 알렸습니다" in m.body and "/dispatches/" not in m.body


def test_voice_sos_says_voice_but_not_the_phrase() -> None:
    d = decide_sos(
        HOME, None, source="voice", phrase="살려줘", message_id="a" * 32, now=NOW, policy=POLICY
    )
    assert all("음성 SOS" in m.body and "살려줘" not in m.body for m in d.messages)


def test_no_message_names_the_resident_or_gives_the_address() -> None:
    """Every decision's every message, for every role (caregiver, guardian, staff)."""
    from collector.domain.escalation import DispatchState, EscalationPolicy, decide_escalation

    open_ = OpenDispatchView(7, "sos", NOW)
    staff = Contact("staff", "구청", phone="010-9999-0000", email="staff@example.org")
    state = DispatchState(7, "open", 0, NOW, NOW - dt.timedelta(seconds=90))
    escalation = decide_escalation(
        state, HOME, now=NOW, policy=EscalationPolicy(staff=staff, dashboard_url="https://a")
    )
    assert escalation is not None
    messages = [
        *decide_sos(
            HOME, None, source="button", phrase=None, message_id="a" * 32, now=NOW, policy=POLICY
        ).messages,
        *decide_sos(
            HOME,
            open_,
            source="voice",
            phrase="도와줘",
            message_id="b" * 32,
            now=NOW,
            policy=POLICY,
        ).messages,
        *decide_cancel(HOME, open_, source="voice", now=NOW, policy=POLICY).messages,
        *escalation.messages,
    ]
    assert {m.recipient_role for m in messages} == {"caregiver", "guardian", "staff"}
    for m in messages:
        for private in ("박순자", "연희로"):
            assert private not in m.subject and private not in m.body, m
        assert "h0001" in m.body
    guardian = {m.body for m in messages if m.recipient_role == "guardian"}
    others = {m.body for m in messages if m.recipient_role != "guardian"}
    assert guardian and not guardian & others


def test_household_without_caregiver_goes_to_staff() -> None:
    home = HouseholdView("h2", "seodaemun", "최", "", None, None)
    d = decide_sos(
        home, None, source="button", phrase=None, message_id="a" * 32, now=NOW, policy=POLICY
    )
    assert [(m.channel, m.recipient) for m in d.messages] == [("email", "staff@example.org")]


def test_repeated_sos_attaches_to_the_open_dispatch() -> None:
    open_ = OpenDispatchView(7, "sos", NOW)
    d = decide_sos(
        HOME, open_, source="voice", phrase="도와줘", message_id="b" * 32, now=NOW, policy=POLICY
    )
    assert not d.open_new and d.existing_dispatch_id == 7 and d.escalate_at is None
    assert {m.purpose for m in d.messages} == {"sos-repeat-bbbbbbbbbbbb"}


def test_cancel_marks_and_tells_but_never_closes() -> None:
    d = decide_cancel(HOME, OpenDispatchView(7, "sos", NOW), source="voice", now=NOW, policy=POLICY)
    assert d.dispatch_id == 7
    assert {m.purpose for m in d.messages} == {"cancel"}
    assert all("닫히지 않았습니다" in m.body for m in d.messages if m.recipient_role == "caregiver")
    assert all("취소되었습니다" in m.body for m in d.messages if m.recipient_role == "guardian")
    assert decide_cancel(HOME, None, source="button", now=NOW, policy=POLICY).dispatch_id is None
