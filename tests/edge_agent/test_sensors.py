"""Button, PIR and LED classes: real gpiozero devices on gpiozero's mock pins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from edge_agent.sensors import Blink, MotionDetector, SosButton, StatusLed
from edge_agent.sos import Feedback
from firmware_config.device import GpioConfig

pytestmark = pytest.mark.usefixtures("mock_pins", "close_devices")

WAIT_S = 5.0  # generous: these waits end as soon as the condition holds


def eventually(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


_open: list[Any] = []
T = TypeVar("T")


def opened(device: T) -> T:
    """Close ``device`` after the test (its gpiozero threads stop with it)."""
    _open.append(device)
    return device


@pytest.fixture
def close_devices() -> Any:
    yield
    while _open:
        _open.pop().close()


class Calls:
    def __init__(self) -> None:
        self.sos = 0
        self.cancel = 0
        self.event = threading.Event()

    def on_sos(self) -> None:
        self.sos += 1
        self.event.set()

    def on_cancel(self) -> None:
        self.cancel += 1
        self.event.set()


def make_button(calls: Calls, **kwargs: Any) -> SosButton:
    kwargs.setdefault("long_press_s", 0.05)
    kwargs.setdefault("bounce_time_s", None)
    return opened(SosButton(17, on_sos=calls.on_sos, on_cancel=calls.on_cancel, **kwargs))


def hold(button: SosButton) -> None:
    held = button.long_presses
    button.pin.drive_low()
    assert eventually(lambda: button.long_presses > held)
    button.pin.drive_high()


def tap(button: SosButton) -> None:
    button.pin.drive_low()
    button.pin.drive_high()


# --- SOS button ---------------------------------------------------------------------------------


def test_a_press_calls_for_help_at_once_without_waiting_for_release() -> None:
    calls = Calls()
    button = make_button(calls)
    button.pin.drive_low()
    assert calls.sos == 1 and button.is_pressed
    button.pin.drive_high()
    assert calls.sos == 1 and calls.cancel == 0


def test_holding_the_first_press_never_withdraws_it() -> None:
    """A resident in a panic may keep pressing: that must not cancel the call."""
    calls = Calls()
    button = make_button(calls)
    hold(button)
    assert (calls.sos, calls.cancel) == (1, 0)


def test_a_long_press_while_an_sos_is_pending_cancels_it_instead_of_calling_again() -> None:
    calls = Calls()
    button = make_button(calls)
    tap(button)
    hold(button)
    assert (calls.sos, calls.cancel) == (1, 1)
    hold(button)  # nothing pending any more: this is a new call for help
    assert (calls.sos, calls.cancel) == (2, 1)


def test_a_short_press_while_pending_calls_again() -> None:
    calls = Calls()
    button = make_button(calls)
    tap(button)
    tap(button)
    assert (calls.sos, calls.cancel) == (2, 0)


def test_after_the_cancel_window_a_long_press_is_a_new_call() -> None:
    now = [100.0]
    calls = Calls()
    button = make_button(calls, cancel_window_s=30, clock=lambda: now[0])
    tap(button)
    now[0] += 31
    hold(button)
    assert (calls.sos, calls.cancel) == (2, 0)


def test_pending_can_come_from_the_sos_tracker() -> None:
    """A voice SOS makes the button's long press a cancel too."""
    calls = Calls()
    button = make_button(calls, sos_pending=lambda: True)
    hold(button)
    assert (calls.sos, calls.cancel) == (0, 1)


def test_button_from_config_uses_its_pin_and_long_press() -> None:
    calls = Calls()
    button = SosButton.from_config(
        GpioConfig(sos_button_pin=22, long_press_s=0.05), calls.on_sos, calls.on_cancel
    )
    assert button.pin.info.name == "GPIO22"
    button.close()
    assert button.pin is None


# --- PIR ----------------------------------------------------------------------------------------


def test_motion_episodes_are_counted() -> None:
    started, ended = threading.Semaphore(0), threading.Semaphore(0)
    pir = opened(MotionDetector(4, on_motion=started.release, on_no_motion=ended.release))
    assert pir.episodes == 0
    for episode in (1, 2):
        pir.pin.drive_high()
        assert started.acquire(timeout=WAIT_S)
        assert pir.episodes == episode and pir.motion_detected
        pir.pin.drive_low()
        assert ended.acquire(timeout=WAIT_S)
    assert not pir.motion_detected


def test_motion_already_going_on_at_start_is_counted() -> None:
    """gpiozero's first sample fires no event; the detector counts that episode itself."""
    from gpiozero import Device

    Device.pin_factory.pin(4).drive_high()
    seen = threading.Event()
    # without the pull-down, because a mock pin's pull-down would drive it low at once
    pir = opened(MotionDetector(4, on_motion=seen.set, pull_down=False))
    assert seen.wait(WAIT_S) and pir.episodes == 1
    time.sleep(0.3)  # a few more samples: still one episode
    assert pir.episodes == 1


# --- status LED ---------------------------------------------------------------------------------


class QuickLed(StatusLed):
    FAST = Blink(0.01, 0.01)
    SLOW = Blink(0.03, 0.03)
    TWICE = Blink(0.02, 0.02, n=2)


def states(led: StatusLed) -> list[bool]:
    return [bool(s.state) for s in led.pin.states]


def test_led_patterns_follow_the_sos_feedback() -> None:
    led = opened(QuickLed(27, confirmed_s=0.05))
    assert not led.is_lit and led.feedback is Feedback.IDLE

    led.show(Feedback.SENDING)
    assert eventually(lambda: len(states(led)) >= 6)  # blinking
    led.show(Feedback.IDLE)
    assert not led.is_lit

    led.pin.clear_states()
    led.show(Feedback.CANCELLED)
    assert eventually(lambda: len(states(led)) >= 5)
    time.sleep(0.1)
    assert states(led) == [False, True, False, True, False]  # two blinks, then off

    led.pin.clear_states()
    led.show(Feedback.CONFIRMED)
    assert eventually(lambda: not led.is_lit and len(states(led)) >= 3)
    assert states(led) == [False, True, False]  # solid for confirmed_s, then off


def test_led_pattern_table() -> None:
    led = opened(StatusLed.from_config(GpioConfig(), confirmed_s=10))
    assert led.pattern(Feedback.IDLE) is None
    fast, slow = led.pattern(Feedback.SENDING), led.pattern(Feedback.SENT)
    assert fast is not None and slow is not None and fast.on_s < slow.on_s
    assert fast.n is None and slow.n is None
    assert led.pattern(Feedback.CONFIRMED) == Blink(10, 0.0, n=1)
    assert led.pattern(Feedback.CANCELLED) == Blink(0.2, 0.2, n=2)
