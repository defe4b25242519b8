"""The parts wired to the Pi's header: SOS button, PIR motion sensor, status LED (via gpiozero).

Pins come from :class:`firmware_config.device.GpioConfig` (BCM numbering). On a desk without a Pi,
use gpiozero's mock pins: ``GPIOZERO_PIN_FACTORY=mock`` or pass ``pin_factory=MockFactory()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Button, MotionSensor

from edge_agent.sos import Feedback
from firmware_config.device import GpioConfig


class SosButton:
    """The help button: a press calls for help, a long press withdraws a call just made.

    Wiring: one leg to BCM 17 (``gpio.sos_button_pin``), the other to GND. The Pi's internal
    pull-up holds the pin high; pressing pulls it low.

    Gestures:

    * A press while no SOS is pending calls ``on_sos()`` at once, without waiting for the release
      (a resident who has fallen may not let go). Holding *that* press does nothing more, so a
      panicked long press never withdraws its own call.
    * While an SOS is pending (``sos_pending()`` is true), holding the button for ``long_press_s``
      calls ``on_cancel()`` instead of another SOS; a shorter press calls ``on_sos()`` again (the
      SOS tracker sends it and restarts the cancel window).

    By default an SOS is pending for ``cancel_window_s`` after this button raised one; pass
    ``sos_pending`` to count voice SOS too (the tracker still decides whether a cancel applies).

    >>> from gpiozero.pins.mock import MockFactory
    >>> button = SosButton(17, on_sos=lambda: print("help!"), on_cancel=lambda: print("cancel"),
    ...                    pin_factory=MockFactory())
    >>> button.pin.drive_low()
    help!
    """

    def __init__(
        self,
        pin: int,
        on_sos: Callable[[], None],
        on_cancel: Callable[[], None],
        long_press_s: float = 2.0,
        sos_pending: Callable[[], bool] | None = None,
        cancel_window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        bounce_time_s: float | None = 0.05,
        pin_factory: Any = None,
    ) -> None:
        self.on_sos = on_sos
        self.on_cancel = on_cancel
        self.cancel_window_s = cancel_window_s
        self.clock = clock
        self._sos_pending = sos_pending or self._recently_raised
        self._last_sos_at: float | None = None
        self._press_raised = False
        self._press_done = False
        self.presses = 0
        self.long_presses = 0
        """Presses held for ``long_press_s`` (whether or not they cancelled anything)."""
        self._button = Button(
            pin,
            pull_up=True,
            bounce_time=bounce_time_s,
            hold_time=long_press_s,
            pin_factory=pin_factory,
        )
        self._button.when_pressed = self._pressed
        self._button.when_held = self._held
        self._button.when_released = self._released

    @classmethod
    def from_config(
        cls,
        gpio: GpioConfig,
        on_sos: Callable[[], None],
        on_cancel: Callable[[], None],
        **kwargs: Any,
    ) -> SosButton:
        return cls(gpio.sos_button_pin, on_sos, on_cancel, long_press_s=gpio.long_press_s, **kwargs)

    @property
    def pin(self) -> Any:
        """The gpiozero pin (a ``MockPin`` in tests: ``drive_low()`` presses the button)."""
        return self._button.pin

    @property
    def is_pressed(self) -> bool:
        return bool(self._button.is_pressed)

    def close(self) -> None:
        self._button.close()

    def _recently_raised(self) -> bool:
        last = self._last_sos_at
        return last is not None and 0 <= self.clock() - last <= self.cancel_window_s

    def _raise_sos(self) -> None:
        self._last_sos_at = self.clock()
        self.on_sos()

    def _pressed(self) -> None:
        self.presses += 1
        self._press_done = False
        self._press_raised = not self._sos_pending()
        if self._press_raised:
            self._raise_sos()

    def _held(self) -> None:
        if not (self._press_raised or self._press_done):
            self._press_done = True
            self._last_sos_at = None
            self.on_cancel()
        self.long_presses += 1

    def _released(self) -> None:
        if self._press_raised or self._press_done:
            return
        self._press_done = True
        self._raise_sos()


class MotionDetector:
    """A PIR sensor (HC-SR501): counts motion *episodes* for the heartbeat.

    Wiring: sensor VCC to 5 V, GND to GND, OUT to BCM 4 (``gpio.pir_pin``); OUT is 3.3 V high while
    it sees movement. The internal pull-down (``pull_down=True``) keeps a loose wire reading "no
    motion" rather than random activity that would hide a resident's inactivity.

    gpiozero's first sample only sets the initial state without firing ``when_motion``; if someone
    is already moving when the agent starts, that episode is counted here instead of lost.

    >>> from gpiozero.pins.mock import MockFactory
    >>> pir = MotionDetector(4, on_motion=lambda: print("motion"), pin_factory=MockFactory())
    >>> pir.episodes
    0
    """

    def __init__(
        self,
        pin: int,
        on_motion: Callable[[], None] | None = None,
        on_no_motion: Callable[[], None] | None = None,
        settle_s: float = 1.0,
        pull_down: bool = True,
        pin_factory: Any = None,
    ) -> None:
        self.on_motion = on_motion
        self.on_no_motion = on_no_motion
        self.episodes = 0
        """Times motion started since the agent started."""
        self._lock = threading.Lock()
        self._edge_seen = False
        self._sensor = MotionSensor(
            pin,
            pull_up=False if pull_down else None,
            active_state=None if pull_down else True,
            pin_factory=pin_factory,
        )
        self._sensor.when_motion = self._motion
        self._sensor.when_no_motion = self._no_motion
        self._count_initial_motion(settle_s)

    @classmethod
    def from_config(cls, gpio: GpioConfig, **kwargs: Any) -> MotionDetector:
        return cls(gpio.pir_pin, **kwargs)

    @property
    def pin(self) -> Any:
        return self._sensor.pin

    @property
    def motion_detected(self) -> bool:
        return bool(self._sensor.motion_detected)

    def wait_for_motion(self, timeout_s: float | None = None) -> bool:
        return bool(self._sensor.wait_for_motion(timeout_s))

    def wait_for_no_motion(self, timeout_s: float | None = None) -> bool:
        return bool(self._sensor.wait_for_no_motion(timeout_s))

    def close(self) -> None:
        self._sensor.close()

    def _count_initial_motion(self, settle_s: float) -> None:
        deadline = time.monotonic() + settle_s
        # Wait for the first background sample: it sets one of the two events.
        while time.monotonic() < deadline:
            if self._sensor.wait_for_no_motion(0.01) or self._sensor.wait_for_motion(0.01):
                break
        with self._lock:
            initial = self._sensor.motion_detected and not self._edge_seen
            self._edge_seen = True
        if initial:
            self._episode()

    def _motion(self) -> None:
        with self._lock:
            self._edge_seen = True
        self._episode()

    def _episode(self) -> None:
        self.episodes += 1
        if self.on_motion is not None:
            self.on_motion()

    def _no_motion(self) -> None:
        if self.on_no_motion is not None:
            self.on_no_motion()


@dataclass(frozen=True, slots=True)
class Blink:
    """One LED pattern: ``on_s``/``off_s`` repeated ``n`` times (None = until changed)."""

    on_s: float
    off_s: float
    n: int | None = None


class StatusLed:
    """The status LED shows where the latest SOS is (:class:`edge_agent.sos.Feedback`).

    Wiring: BCM 27 (``gpio.led_pin``) → 330 Ω resistor → LED anode; LED cathode to GND.

    * idle: off
    * sending: fast blink (stored on the device, not yet at the broker)
    * sent: slow blink (the broker has it)
    * confirmed: solid for ``confirmed_s``, then off (a caregiver has been told)
    * cancelled: two blinks, then off

    >>> from gpiozero.pins.mock import MockFactory
    >>> led = StatusLed(27, pin_factory=MockFactory())
    >>> led.show(Feedback.SENDING)
    """

    FAST = Blink(0.1, 0.1)
    SLOW = Blink(0.5, 0.5)
    TWICE = Blink(0.2, 0.2, n=2)

    def __init__(self, pin: int, confirmed_s: float = 10.0, pin_factory: Any = None) -> None:
        self.confirmed_s = confirmed_s
        self.feedback = Feedback.IDLE
        self._led = LED(pin, pin_factory=pin_factory)

    @classmethod
    def from_config(cls, gpio: GpioConfig, **kwargs: Any) -> StatusLed:
        return cls(gpio.led_pin, **kwargs)

    @property
    def pin(self) -> Any:
        return self._led.pin

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    def pattern(self, feedback: Feedback) -> Blink | None:
        """The blink pattern for ``feedback``; None means off."""
        return {
            Feedback.IDLE: None,
            Feedback.SENDING: self.FAST,
            Feedback.SENT: self.SLOW,
            Feedback.CONFIRMED: Blink(self.confirmed_s, 0.0, n=1),
            Feedback.CANCELLED: self.TWICE,
        }[feedback]

    def show(self, feedback: Feedback) -> None:
        self.feedback = feedback
        blink = self.pattern(feedback)
        if blink is None:
            self._led.off()
        else:
            self._led.blink(on_time=blink.on_s, off_time=blink.off_s, n=blink.n, background=True)

    def close(self) -> None:
        self._led.close()
