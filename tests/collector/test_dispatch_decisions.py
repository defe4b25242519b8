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
    assert all(
        m.purpose == "sos" and "박순자" in m.body and "{dispatch_link}" in m.body
        for m in d.messages
    )


def test_voice_sos_names_the_phrase() -> None:
    d = decide_sos(
        HOME, None, source="voice", phrase="살려줘", message_id="a" * 32, now=NOW, policy=POLICY
    )
    assert "살려줘" in d.messages[0].body


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
    assert all("닫히지 않았습니다" in m.body for m in d.messages)
    assert decide_cancel(HOME, None, source="button", now=NOW, policy=POLICY).dispatch_id is None
