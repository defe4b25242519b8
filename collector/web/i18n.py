"""The pages' words in Korean (first) and English, chosen per account (``accounts.language``)."""

from __future__ import annotations

LANGUAGES = ("ko", "en")

_WORDS: dict[str, tuple[str, str]] = {
    # key: (Korean, English)
    "app": ("안부", "Anbu"),
    "login": ("로그인", "Log in"),
    "logout": ("로그아웃", "Log out"),
    "username": ("아이디", "Username"),
    "password": ("비밀번호", "Password"),
    "login_failed": ("아이디 또는 비밀번호가 맞지 않습니다.", "Wrong username or password."),
    "login_throttled": (
        "로그인 시도가 너무 많습니다. {s}초 후에 다시 시도해 주세요.",
        "Too many login attempts. Try again in {s} seconds.",
    ),
    "login_to_open": (
        "출동 #{id}을 열려면 로그인해 주세요.",
        "Log in to open dispatch #{id}.",
    ),
    "my_dispatches": ("내 출동", "My dispatches"),
    "open_dispatches": ("진행 중인 출동", "Open dispatches"),
    "no_open": ("진행 중인 출동이 없습니다.", "No open dispatches."),
    "dispatch": ("출동", "Dispatch"),
    "household": ("가구", "Household"),
    "resident": ("어르신", "Resident"),
    "address": ("주소", "Address"),
    "directions": ("길찾기", "Directions"),
    "guardian": ("보호자", "Guardian"),
    "guardian_told": ("보호자에게 알림", "Guardian told of alarms"),
    "guardian_told_yes": ("예 (어르신 동의)", "Yes (the resident agreed)"),
    "guardian_told_no": ("아니오 (동의 없음)", "No (no consent recorded)"),
    "guardian_consent_given": ("동의 받음: 알림 보내기", "Consent given: tell the guardian"),
    "guardian_consent_withdrawn": ("동의 철회: 알림 끄기", "Consent withdrawn: stop telling"),
    "call": ("전화", "Call"),
    "needs": ("돌봄 메모", "Needs notes"),
    "add_note": ("메모 추가", "Add note"),
    "note": ("메모", "Note"),
    "history": ("방문·지원 기록", "Visit and support history"),
    "timeline": ("진행 기록", "Timeline"),
    "acknowledge": ("확인했습니다", "Acknowledge"),
    "on_site": ("현장 도착", "On site"),
    "resolve_with": ("결과를 골라 종료", "Resolve with outcome"),
    "status": ("상태", "Status"),
    "outcome": ("결과", "Outcome"),
    "reason": ("사유", "Reason"),
    "map": ("지도", "Map"),
    "audit": ("열람·변경 기록", "Audit log"),
    "filters": ("필터", "Filters"),
    "all": ("전체", "All"),
    "households": ("가구 목록", "Households"),
    "risk": ("위험도", "Risk"),
    "state": ("현재 상태", "Live state"),
    "caregiver": ("생활지원사", "Caregiver"),
    "language": ("언어", "Language"),
    "save": ("저장", "Save"),
    "forbidden": ("볼 수 있는 권한이 없습니다.", "You may not see this."),
    "not_found": ("찾을 수 없습니다.", "Not found."),
    "bad_link": ("링크를 열 수 없습니다", "This link cannot be opened"),
    "bad_form": ("입력이 올바르지 않습니다", "Please check the form"),
    "login_stale": (
        "로그인 화면이 오래되었습니다. 다시 시도해 주세요.",
        "The login page was stale. Please try again.",
    ),
    "back": ("목록으로", "Back to the list"),
    "no_tiles": (
        "지도 타일 서버를 쓸 수 없어 배경 없이 표시합니다.",
        "No map tiles available: markers on a plain background.",
    ),
    "live": ("실시간", "Live"),
    "more": ("더 보기", "Show more"),
    "reports": ("월별 통계", "Monthly reports"),
    "month": ("월", "Month"),
    "show": ("보기", "Show"),
    "homes": ("관리 가구", "Homes monitored"),
    "visits": ("현장 방문", "Visits"),
    "test_sos": ("시험 SOS", "Test SOS"),
    "ack_time": ("확인까지 (중앙값 / 90%)", "To acknowledgement (median / 90th)"),
    "arrival_time": ("도착까지 (중앙값 / 90%)", "To arrival (median / 90th)"),
    "sec": ("초", " s"),
    "min": ("분", " min"),
    "when": ("시각", "When"),
    "who": ("누가", "Who"),
    "what": ("무엇", "What"),
    # lifecycle stages
    "stage_raised": ("발생", "Raised"),
    "stage_notified": ("알림 발송", "Notified"),
    "stage_acknowledged": ("확인", "Acknowledged"),
    "stage_on_site": ("현장 도착", "On site"),
    "stage_resolved": ("종료", "Resolved"),
    # statuses
    "status_open": ("미확인", "Not acknowledged"),
    "status_acknowledged": ("확인됨", "Acknowledged"),
    "status_on_site": ("현장", "On site"),
    "status_resolved": ("종료됨", "Resolved"),
    # reasons and priorities
    "reason_sos": ("긴급 SOS", "SOS"),
    "reason_silence": ("무응답(활동 없음)", "Silence"),
    "reason_device_offline": ("기기 끊김", "Device offline"),
    "reason_request": ("상담 요청(전화)", "Call request"),
    "priority_urgent": ("긴급", "Urgent"),
    "priority_normal": ("보통", "Normal"),
    # live states
    "live_sos": ("SOS", "SOS"),
    "live_silent": ("무활동", "Silent"),
    "live_offline": ("기기 꺼짐", "Device offline"),
    "live_ok": ("정상", "OK"),
    "risk_red": ("고위험", "High risk"),
    "risk_orange": ("주의", "Watch"),
    "risk_blue": ("일반", "Low risk"),
    # technician tickets
    "tickets": ("기기 점검", "Device tickets"),
    "tickets_open": ("열린 점검 요청", "Open device tickets"),
    "tickets_all": ("닫힌 것도 보기", "Show closed ones too"),
    "tickets_open_only": ("열린 것만 보기", "Open ones only"),
    "no_tickets": ("열린 점검 요청이 없습니다.", "No open device tickets."),
    "ticket_kind_offline": ("기기 꺼짐", "Device offline"),
    "ticket_kind_audio_overruns": ("소리 끊김", "Audio dropping"),
    "ticket_kind_outbox_backlog": ("전송 밀림", "Messages piling up"),
    "ticket_kind_microphone_silent": ("마이크 무음", "Microphone silent"),
    "device": ("기기", "Device"),
    "ticket_detail": ("내용", "Detail"),
    "opened_at": ("열림", "Opened"),
    "closed_at": ("닫힘", "Closed"),
    "ticket_note": ("조치 내용", "What was done"),
    "close_ticket": ("점검 완료", "Close ticket"),
    # texts from unknown numbers
    "texts": ("받은 문자", "Texts"),
    "texts_intro": (
        "등록된 가구와 맞지 않는 번호에서 온 문자입니다. 가구를 지정하면 담당 생활지원사에게 "
        "상담 요청으로 전달되고, 필요 없는 문자는 사유를 적어 처리합니다.",
        "Texts from numbers no household has. Assign one to a household and it goes to its "
        "caregiver as a call request; close one that needs no household, saying why.",
    ),
    "texts_all": ("처리한 문자도 보기", "Show handled texts too"),
    "texts_waiting_only": ("대기 중인 문자만 보기", "Waiting texts only"),
    "no_texts": ("처리를 기다리는 문자가 없습니다.", "No texts are waiting."),
    "channel_sms": ("문자", "SMS"),
    "channel_voice": ("음성", "Voice"),
    "text_escalated": ("{at} 담당 과장에게 알림", "Supervisor told at {at}"),
    "overdue": ("답변 기한 지남", "Overdue"),
    "answer_by": ("답변 기한", "Answer by"),
    "handled": ("처리됨", "Handled"),
    "received": ("받은 시각", "Received"),
    "sender": ("보낸 번호", "From"),
    "text_body": ("내용", "Text"),
    "assign_to_household": ("가구 번호", "Household id"),
    "assign": ("이 가구의 요청으로 전달", "File as this household's request"),
    "close_text_note": ("처리 사유", "Why no household"),
    "close_text": ("처리 완료", "Mark handled"),
    "text_assigned": ("상담 요청으로 전달했습니다: 출동", "Filed as a call request: dispatch"),
    "already_handled": ("이미 처리되었습니다", "Already handled"),
    # assignment
    "assignment": ("담당 배정", "Assignment"),
    "pin_household": ("가구 담당 지정", "Pin a household"),
    "look_up": ("찾기", "Look up"),
    "no_such_household": ("이 구에 {id} 가구가 없습니다.", "No household {id} in this district."),
    "nobody": ("없음", "Nobody"),
    "pinned": ("고정", "Pinned"),
    "pin_to": ("담당 생활지원사", "Caregiver"),
    "pin": ("이 생활지원사로 고정", "Pin to this caregiver"),
    "unpin": ("고정 해제", "Release the pin"),
    "assign_run": ("자동 배정", "Automatic assignment"),
    "assign_run_intro": (
        "위치에 따라 새 가구와 담당이 없는 가구를 나누고(한 사람당 최대 {capacity}가구), 대리 "
        "담당을 정합니다. 고정한 가구는 그대로 둡니다.",
        "Shares new and unassigned households by location (at most {capacity} each) and "
        "chooses backups. Pinned households stay.",
    ),
    "unassigned_homes": ("담당이 없는 가구: {n}", "Households without a caregiver: {n}"),
    "assign_dry": ("미리 보기", "Preview"),
    "assign_now": ("배정 실행", "Assign now"),
    "assign_preview": (
        "미리 보기: {moved}가구가 옮겨지고 {unassigned}가구가 남습니다 (저장 안 됨).",
        "Preview: {moved} households would move, {unassigned} stay unassigned (nothing saved).",
    ),
    "assign_done": (
        "배정했습니다: {moved}가구 이동, 담당 없는 가구 {unassigned}.",
        "Assigned: {moved} households moved, {unassigned} unassigned.",
    ),
    "caregivers_and_backups": ("생활지원사와 대리 담당", "Caregivers and their backups"),
    "backup": ("대리 담당", "Backup"),
    "backup_of": ("{name}의 대리 담당", "Backup for {name}"),
    "pinned_households": ("고정한 가구", "Pinned households"),
    "no_pins": ("고정한 가구가 없습니다.", "No pinned households."),
    # outcomes
    "outcome_safe": ("안전 확인", "Safe"),
    "outcome_help_given": ("도움 필요, 지원함", "Needed help, given"),
    "outcome_taken_to_hospital": ("병원 이송", "Taken to hospital"),
    "outcome_door_opened": (
        "응답 없음, 경찰·119와 문 개방",
        "No answer, door opened with police or 119",
    ),
    "outcome_false_alarm": ("오작동·오신고", "False alarm"),
    "outcome_test": ("시험", "Test"),
    "outcome_device_problem": ("기기 문제", "Device problem"),
    "outcome_deceased": ("사망", "Deceased"),
    "outcome_visited_ok": ("방문, 이상 없음", "Visited, all right"),
    "outcome_phoned_ok": ("통화, 이상 없음", "Phoned, all right"),
    "outcome_emergency_services_called": ("119·112 신고", "Emergency services called"),
    "outcome_no_answer_escalated": ("응답 없음, 상부 보고", "No answer, escalated"),
    "outcome_other": ("기타", "Other"),
}


def translate(language: str, key: str, **values: object) -> str:
    """The word for ``key`` in ``language`` (Korean when unknown); ``{name}`` filled from values."""
    pair = _WORDS.get(key)
    if pair is None:
        return key
    text = pair[1] if language == "en" else pair[0]
    return text.format(**values) if values else text


def keys() -> frozenset[str]:
    return frozenset(_WORDS)
