"""The pages in a real browser: Debian's Chromium driven by Playwright, against the collector's
app served by uvicorn on a loopback port, over a real SQLite database.

* a caregiver follows the SMS link on a phone-sized screen, logs in, acknowledges, marks on site
  and resolves with an outcome;
* a supervisor watches a household's marker change colour when an SOS arrives (server-sent
  events), with no tile server reachable (markers on a plain background);
* a caregiver gets 403 on another caregiver's household, a supervisor on another district's.

Screenshots go to ``artifacts/screenshots/`` (or ``$ANBU_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from collector.main import create_app
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import Notification
from tests.support.smtp import free_port
from tests.web.conftest import API_TOKEN, LINK_SECRET, PASSWORD, FakeRuntime, seed

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
SOS_FILL = "#c2188b"
BLUE = "#1d4ed8"


@pytest.fixture(scope="module")
def shots() -> Path:
    root = Path(os.environ.get("ANBU_ARTIFACTS_DIR", "artifacts")) / "screenshots"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Database]]:
    """The collector's app on a free loopback port over a seeded SQLite database."""
    db = Database(f"sqlite:///{tmp_path / 'anbu.sqlite3'}")
    seed(db)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = CollectorSettings(
        api_token=API_TOKEN,
        database_url=db.url,
        link_secret=LINK_SECRET,
        public_url=base,
        # A tile server that cannot answer: the map must still show its markers.
        map_tile_url=f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png",
    )
    app = create_app(FakeRuntime(db, settings), settings=settings)
    app.state.web.map_poll_s = 0.2
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                       timeout_graceful_shutdown=1)
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield base, db
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: scripts/bootstrap.sh installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def phone_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="ko-KR")
    return context.new_page()


def log_in(page: Page, username: str) -> None:
    page.get_by_label("아이디").fill(username)
    page.get_by_label("비밀번호").fill(PASSWORD)
    page.get_by_role("button", name="로그인").click()


def sms_url(db: Database, dispatch_id: int) -> str:
    with db.session() as s:
        body = s.scalar(
            select(Notification.body).where(
                Notification.dispatch_id == dispatch_id,
                Notification.channel == "sms",
                Notification.recipient_role == "caregiver",
            )
        )
    assert body is not None
    return next(word for word in body.split() if "/l/" in word)


def test_caregiver_follows_the_sms_link_and_closes_the_dispatch_on_a_phone(
    live: tuple[str, Database], browser: Browser, shots: Path
) -> None:
    from tests.web.conftest import raise_sos

    base, db = live
    dispatch_id = raise_sos(db, "h-a1", base_url=base)
    page = phone_page(browser)
    page.goto(sms_url(db, dispatch_id))
    expect(page.get_by_text(f"출동 #{dispatch_id}을 열려면 로그인해 주세요")).to_be_visible()
    page.screenshot(path=shots / "caregiver-1-login.png", full_page=True)
    log_in(page, "care-a")
    expect(page).to_have_url(f"{base}/care/dispatches/{dispatch_id}")
    card = page.locator("#dispatch")
    expect(card).to_have_attribute("data-status", "open")
    page.screenshot(path=shots / "caregiver-2-dispatch.png", full_page=True)

    page.get_by_role("button", name="확인했습니다").click()
    expect(card).to_have_attribute("data-status", "acknowledged")
    page.get_by_role("button", name="현장 도착").click()
    expect(card).to_have_attribute("data-status", "on_site")
    page.screenshot(path=shots / "caregiver-3-on-site.png", full_page=True)
    page.get_by_label("메모").first.fill("약 챙겨드림")
    page.get_by_role("button", name="안전 확인").click()
    expect(card).to_have_attribute("data-status", "resolved")
    expect(page.locator("#outcome")).to_have_text("안전 확인")
    expect(page.locator('.timeline li[data-stage="on_site"]')).to_contain_text("김지원")
    page.screenshot(path=shots / "caregiver-4-resolved.png", full_page=True)

    # Nothing on the phone's page is wider than the phone.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]

    # English, chosen for this account, on the household's page.
    page.get_by_role("button", name="English").click()
    page.get_by_role("link", name="어르신h-a1").click()
    expect(page.get_by_role("heading", name="Visit and support history")).to_be_visible()
    expect(page.locator(".history")).to_contain_text("Safe")
    page.screenshot(path=shots / "caregiver-5-household-en.png", full_page=True)
    page.context.close()


def test_keyboard_alone_logs_in_and_acknowledges(
    live: tuple[str, Database], browser: Browser
) -> None:
    from tests.web.conftest import raise_sos

    base, db = live
    dispatch_id = raise_sos(db, "h-a2", base_url=base)
    page = phone_page(browser)
    page.goto(f"{base}/login?next=/care/dispatches/{dispatch_id}")
    page.locator("#username").focus()  # what autofocus does when the window has focus
    page.keyboard.type("care-a")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#dispatch")).to_have_attribute("data-status", "open")
    page.get_by_role("button", name="확인했습니다").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#dispatch")).to_have_attribute("data-status", "acknowledged")
    page.context.close()


def test_supervisor_sees_the_marker_turn_when_an_sos_arrives(
    live: tuple[str, Database], browser: Browser, shots: Path
) -> None:
    from tests.web.conftest import raise_sos

    base, db = live
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR")
    page = context.new_page()
    page.goto(f"{base}/login?next=/map")
    log_in(page, "sup-seo")
    expect(page.locator("body")).to_have_attribute("data-map-ready", "true")
    marker = page.locator('path[data-household="h-b1"]')
    expect(marker).to_have_attribute("data-state", "ok")
    expect(marker).to_have_attribute("fill", BLUE)
    expect(page.locator("#live")).to_have_attribute("data-connected", "true")
    expect(page.locator("#no-tiles")).to_be_visible()  # the tile server is unreachable
    assert page.locator("path[data-household]").count() == 3  # only this district
    page.screenshot(path=shots / "supervisor-1-map.png")

    raise_sos(db, "h-b1", base_url=base)
    expect(marker).to_have_attribute("data-state", "sos", timeout=10_000)
    expect(marker).to_have_attribute("fill", SOS_FILL)
    expect(page.locator('#homes tr[data-household="h-b1"]')).to_have_attribute("data-state", "sos")
    page.screenshot(path=shots / "supervisor-2-sos.png")

    # The filter hides the homes that are fine and keeps the SOS.
    page.get_by_label("정상").uncheck()
    expect(page.locator("#count")).to_have_text("1")

    page.get_by_role("link", name="월별 통계").click()
    expect(page.locator('[data-district="seodaemun"] [data-figure="sos"]')).to_have_text("1")
    page.screenshot(path=shots / "supervisor-3-reports.png", full_page=True)
    context.close()


def test_403_for_another_caregivers_household_and_another_district(
    live: tuple[str, Database], browser: Browser, shots: Path
) -> None:
    base, _db = live
    page = phone_page(browser)
    page.goto(f"{base}/login?next=/care")
    log_in(page, "care-a")
    response = page.goto(f"{base}/care/households/h-b1")
    assert response is not None and response.status == 403
    expect(page.get_by_text("볼 수 있는 권한이 없습니다.")).to_be_visible()
    page.screenshot(path=shots / "caregiver-403.png", full_page=True)
    page.context.close()

    desk = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    desk.goto(f"{base}/login?next=/map")
    log_in(desk, "sup-seo")
    response = desk.goto(f"{base}/care/households/h-m1")
    assert response is not None and response.status == 403
    desk.screenshot(path=shots / "supervisor-403.png")
    desk.context.close()


def test_supervisor_files_a_lost_text_and_pins_a_household_on_a_phone(
    live: tuple[str, Database], browser: Browser, shots: Path
) -> None:
    """A text from an unknown number: assigned to a household (its caregiver gets a request
    dispatch), another closed with a reason; then h-a1 pinned to 박정호 and a backup chosen,
    by keyboard where it matters, on a phone-sized screen, in Korean and then English."""
    from tests.web.test_web_office import add_text

    base, db = live
    lost = add_text(db, "seodaemun", "어머니께 전화 부탁드립니다", sender="01055556666")
    spam = add_text(db, "seodaemun", "광고 문자입니다")
    page = phone_page(browser)
    page.goto(f"{base}/login?next=/texts")
    log_in(page, "sup-seo")
    card = page.locator(f"#text-{lost}")
    expect(card).to_have_attribute("data-status", "waiting")
    expect(page.locator(f"#text-{spam}")).to_be_visible()
    page.screenshot(path=shots / "supervisor-texts-1-waiting.png", full_page=True)
    card.get_by_label("가구 번호").fill("h-a1")
    card.get_by_role("button", name="이 가구의 요청으로 전달").click()
    expect(page.get_by_role("status")).to_contain_text("상담 요청으로 전달했습니다")
    expect(page.locator(f"#text-{lost}")).to_have_count(0)
    spam_card = page.locator(f"#text-{spam}")
    spam_card.get_by_label("처리 사유").fill("광고")
    spam_card.get_by_label("처리 사유").press("Enter")  # the keyboard submits the form
    expect(page.get_by_text("처리를 기다리는 문자가 없습니다.")).to_be_visible()
    page.get_by_role("link", name="처리한 문자도 보기").click()
    expect(page.locator(f"#text-{lost}")).to_have_attribute("data-status", "handled")
    page.screenshot(path=shots / "supervisor-texts-2-handled.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.get_by_role("link", name="담당 배정").click()
    page.get_by_label("가구", exact=True).fill("h-a1")
    page.get_by_role("button", name="찾기").click()
    found = page.locator("#looked-up")
    expect(found).to_have_attribute("data-pinned", "false")
    found.get_by_label("담당 생활지원사").select_option(label="박정호 (1/100)")
    found.get_by_role("button", name="이 생활지원사로 고정").click()
    expect(page.locator("#looked-up")).to_have_attribute("data-pinned", "true")
    expect(page.locator("#pin-h-a1")).to_contain_text("박정호")
    park = page.locator("#looked-up").get_attribute("data-caregiver")
    kim = page.locator("tr", has_text="김지원의 대리 담당").get_attribute("id")
    assert park and kim
    row = page.locator(f"#caregiver-{park}")
    row.get_by_label("박정호의 대리 담당").select_option(label="김지원")
    row.get_by_role("button", name="저장").click()
    expect(page.locator(f"#caregiver-{park}")).to_have_attribute(
        "data-backup", kim.removeprefix("caregiver-")
    )
    page.screenshot(path=shots / "supervisor-assignment-1-pinned.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Caregivers and their backups")).to_be_visible()
    page.screenshot(path=shots / "supervisor-assignment-2-en.png", full_page=True)
    page.context.close()
