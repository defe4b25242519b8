"""What each recipient reads: the minimum they need to act, worded for their role. Pure.

An SMS passes through the gateway operator and both SMS and e-mail sit on phones and servers we do
not control, so no message carries the resident's name or address. What it carries:

==========================  ================================================================
recipient                   text
==========================  ================================================================
caregiver, staff            the household's short reference (its id), the kind of alarm
                            (SOS by button or by voice, repeated, cancelled, unanswered), the
                            time, the dispatch number and the link to the dispatch page, where
                            they log in to see who and where
guardian                    that the household's device raised the alarm and that the
                            caregiver was told (or that it was cancelled, or is unanswered and
                            went to the district office); no link, since guardians have no login
==========================  ================================================================

The link is built in one place, :func:`dispatch_link`; signed links replace that function only.
"""

from __future__ import annotations

import datetime as dt

from collector.domain.links import LINK_PLACEHOLDER

GUARDIAN = "guardian"
NEW_DISPATCH = "{dispatch_id}"
"""Stands for the id of a dispatch not stored yet; the service fills it in."""


KIND_LABELS = {
    "sos": "SOS",
    "silence": "무응답 가구",
    "device_offline": "기기 끊김",
    "request": "상담 요청",
}


def dispatch_link(dashboard_url: str, dispatch_ref: str) -> str:
    """The link line to one dispatch's page: a placeholder the service fills with a signed,
    expiring link (:func:`collector.domain.links.fill_links`) once the dispatch id is known."""
    del dashboard_url, dispatch_ref  # the signer knows the base URL; the id comes at filling
    return LINK_PLACEHOLDER


def household_ref(household_id: str) -> str:
    """Short household reference used instead of name and address."""
    return f"가구 {household_id}"


def local_time(ts: dt.datetime) -> str:
    kst = dt.timezone(dt.timedelta(hours=9), "KST")
    return ts.astimezone(kst).strftime("%m-%d %H:%M KST")


def alarm_kind(source: str) -> str:
    return "SOS 버튼" if source == "button" else "음성 SOS"


def sos_text(
    role: str,
    *,
    household_id: str,
    source: str,
    now: dt.datetime,
    dispatch_ref: str,
    dashboard_url: str,
    repeated: bool,
) -> tuple[str, str]:
    """Subject and body of an SOS message (new or repeated) for ``role``."""
    ref, kind, when = household_ref(household_id), alarm_kind(source), local_time(now)
    if role == GUARDIAN:
        subject = "[안부] 도움 요청이 다시 접수되었습니다" if repeated else "[안부] 도움 요청 접수"
        body = (
            f"{ref}의 안부 기기로 도움 요청({kind})이 {when}에 "
            f"{'다시 ' if repeated else ''}접수되어 담당 생활지원사에게 알렸습니다."
        )
        return subject, body
    number = "" if dispatch_ref == NEW_DISPATCH else f" 출동 #{dispatch_ref}."
    if repeated:
        subject = f"[안부] SOS 반복: {ref}"
        body = f"{ref}에서 다시 도움을 요청했습니다 ({kind}, {when}).{number} "
    else:
        subject = f"[안부] 긴급 SOS: {ref}"
        body = f"{ref}에서 도움을 요청했습니다 ({kind}, {when}). 확인 후 응답해 주세요: "
    return subject, body + dispatch_link(dashboard_url, dispatch_ref)


def cancel_text(
    role: str,
    *,
    household_id: str,
    source: str,
    now: dt.datetime,
    dispatch_id: int,
    dashboard_url: str,
) -> tuple[str, str]:
    """Subject and body of the message that the resident cancelled an SOS."""
    ref, when = household_ref(household_id), local_time(now)
    how = "버튼 길게 누름" if source == "button" else "음성"
    if role == GUARDIAN:
        return (
            "[안부] 도움 요청 취소",
            f"{ref}의 도움 요청이 {when}에 취소되었습니다 ({how}). "
            "담당 생활지원사가 전화로 안부를 확인합니다.",
        )
    return (
        f"[안부] SOS 취소: {ref}",
        f"{ref}에서 도움 요청을 취소했습니다 ({how}, {when}). "
        f"출동 #{dispatch_id}은 닫히지 않았습니다: 전화로 안부를 확인해 주세요. "
        + dispatch_link(dashboard_url, str(dispatch_id)),
    )


def escalation_text(
    role: str,
    *,
    household_id: str,
    level: int,
    waited_s: int,
    dispatch_id: int,
    dashboard_url: str,
    kind: str = "sos",
) -> tuple[str, str]:
    """Subject and body of an escalation: nobody acknowledged the dispatch in time."""
    ref = household_ref(household_id)
    if role == GUARDIAN:
        what = "상담 요청" if kind == "request" else "도움 요청"
        return (
            f"[안부] {what} 확인 지연",
            f"{ref}의 {what}이 {waited_s}초 동안 확인되지 않아 구청 담당자에게도 알렸습니다.",
        )
    tag = "미응답" if level == 1 else "긴급 미응답"
    return (
        f"[안부] {tag} {KIND_LABELS.get(kind, kind)}: {ref}",
        f"출동 #{dispatch_id}({ref})이 {waited_s}초 동안 확인되지 않았습니다. "
        + dispatch_link(dashboard_url, str(dispatch_id)),
    )


def request_text(
    role: str,
    *,
    household_id: str | None,
    channel: str,
    now: dt.datetime,
    due_at: dt.datetime,
) -> tuple[str, str]:
    """A non-urgent request for a call; answer by ``due_at`` (one working day)."""
    del role  # caregiver, department or staff: the same words
    ref = household_ref(household_id) if household_id else "등록되지 않은 번호"
    how = "음성" if channel == "voice" else "문자"
    return (
        f"[안부] 상담 요청: {ref}",
        f"{ref}에서 상담 전화를 요청했습니다 ({how}, {local_time(now)}). "
        f"{local_time(due_at)}까지 연락해 주세요: " + dispatch_link("", ""),
    )


def unanswered_text_text(
    role: str, *, received_at: dt.datetime, due_at: dt.datetime, texts_url: str
) -> tuple[str, str]:
    """A text to the district's number from a number no household has, still not matched or
    closed when its working day ended."""
    del role  # supervisor, department or staff: the same words
    return (
        "[안부] 답하지 않은 문자",
        f"등록되지 않은 번호에서 {local_time(received_at)}에 받은 문자가 "
        f"{local_time(due_at)}까지 처리되지 않았습니다. 가구에 연결하거나 처리해 주세요: "
        f"{texts_url}",
    )


def device_offline_text(
    role: str, *, household_id: str, since: dt.datetime, dispatch_ref: str
) -> tuple[str, str]:
    """The home's device has been off since ``since``: nobody is watching over the resident."""
    del role  # caregiver or staff: the same words (guardians are not told of device faults)
    ref = household_ref(household_id)
    number = "" if dispatch_ref == NEW_DISPATCH else f" 출동 #{dispatch_ref}."
    return (
        f"[안부] 기기 끊김: {ref}",
        f"{ref}의 안부 기기가 {local_time(since)}부터 연결되지 않습니다.{number} "
        "안부 전화를 드리고 기기(전원, 인터넷)를 확인해 주세요: " + dispatch_link("", ""),
    )


def device_back_text(
    role: str, *, household_id: str, at: dt.datetime, dispatch_id: int, closed: bool
) -> tuple[str, str]:
    """The device is back: the dispatch was closed for the caregiver, or is still theirs."""
    del role
    ref = household_ref(household_id)
    then = (
        f"출동 #{dispatch_id}은 자동으로 종료되었습니다 (방문 필요 없음)."
        if closed
        else f"출동 #{dispatch_id}은 열려 있습니다: 확인 후 종료해 주세요."
    )
    return (
        f"[안부] 기기 다시 연결: {ref}",
        f"{ref}의 안부 기기가 {local_time(at)}에 다시 연결되었습니다. {then}",
    )
