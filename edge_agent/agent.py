"""Wiring only: the sensors, the voice pipeline and the outbox/link, joined by small callbacks.

What happens when the resident presses the SOS button::

    SosButton.when_pressed → Agent.raise_sos("button")
        → SosEvent written to the on-disk outbox (fsync) → LED "sending", prompt "sos_sent"
        → Link publishes it at QoS 1; on PUBACK the outbox deletes it → LED "sent"
        → collector stores it and answers cmd/sos_ack → LED "confirmed", prompt "sos_confirmed"

Nothing here decides anything: the spotter, the SOS tracker and the heartbeat builder do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge_agent.announce import Announcer
from edge_agent.checkin import CheckinResponder
from edge_agent.heartbeat import Counters, HeartbeatBuilder
from edge_agent.outbox import Outbox
from edge_agent.sos import Feedback, SosTracker
from edge_agent.spotter import Detection, Kind
from edge_agent.voice_sos import Action, Decision, VoiceSosDecider
from firmware_config.checkin import CheckinRequest
from firmware_config.device import DeviceConfig
from firmware_config.messages import (
    CallRequest,
    CancelAck,
    CommandMessage,
    MotionEvent,
    SosAck,
    SosCancel,
    SosEvent,
)
from firmware_config.phrases import PhraseSet
from firmware_config.topics import Channel

log = logging.getLogger("anbu.agent")


class LinkLike(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout_s: float = ...) -> None: ...
    @property
    def is_connected(self) -> bool: ...


class FeedbackLike(Protocol):
    def show(self, feedback: Feedback) -> None: ...


class VoiceLike(Protocol):
    wake_word_count: int
    interactions: int

    @property
    def speech_s(self) -> float: ...
    @property
    def audio_overruns(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Clocks:
    """Monotonic seconds for intervals and windows; wall seconds for message timestamps."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


class Agent:
    """One home's agent. Build it with :func:`edge_agent.runtime.build_agent`."""

    def __init__(
        self,
        config: DeviceConfig,
        phrases: PhraseSet,
        outbox: Outbox,
        announcer: Announcer,
        *,
        version: str,
        clocks: Clocks | None = None,
    ) -> None:
        self.config = config
        self.phrases = phrases
        self.outbox = outbox
        self.announcer = announcer
        self.version = version
        self.clocks = clocks or Clocks()
        self.address = config.address
        self.tracker = SosTracker(config.cancel_window_s)
        self.voice_sos = VoiceSosDecider(
            config.voice.ask_below_confidence,
            config.voice.answer_timeout_s,
            config.voice.send_unanswered,
        )
        self.link: LinkLike | None = None
        self.led: FeedbackLike | None = None
        self.voice: VoiceLike | None = None
        self.parts: list[object] = []  # sensors etc., closed on stop
        self.checkin: CheckinResponder | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._sos_item: tuple[str, int] | None = None  # (message id, outbox id) being delivered
        self._motion = 0
        self._button_presses = 0
        self._last_motion_event_at: float | None = None
        self.started_at = self.clocks.monotonic()
        self._heartbeats = HeartbeatBuilder(version, self.started_at)
        self._threads: list[threading.Thread] = []

    # -- events from the sensors and the voice pipeline ---------------------------------------

    def raise_sos(self, source: str, phrase: str | None = None, *, test: bool = False) -> str:
        """Store an SOS durably, then tell the resident; returns its message id.

        ``test`` marks it as a test (``anbu agent verify``): delivered and acknowledged like any
        SOS, but the collector dispatches nobody.
        """
        with self._lock:
            event = SosEvent(
                device_ts=self.clocks.wall(),
                seq=self.outbox.next_seq(),
                source="voice" if source == "voice" else "button",
                phrase=phrase,
                language="ko" if self.phrases.language == "ko" else "en",
                test=test,
            )
            item_id = self.outbox.put_held(
                event.message_id, self.address.topic(Channel.SOS), event.to_payload()
            )
            self._sos_item = (event.message_id, item_id)
            if source == "button":
                self._button_presses += 1
            feedback = self.tracker.sos(event.message_id, self.clocks.monotonic())
        log.warning(
            "sos raised", extra={"source": source, "message_id": event.message_id, "test": test}
        )
        self._show(feedback)
        self._say("sos_sent")
        if self.link is not None:
            self.link.wake()
        return event.message_id

    def request_cancel(self, source: str, phrase: str | None = None) -> str | None:
        """Cancel the latest SOS if still within the window; returns the cancelled SOS id."""
        with self._lock:
            sos_id = self.tracker.cancel(self.clocks.monotonic())
            if sos_id is None:
                log.info("cancel ignored: no SOS within the window", extra={"source": source})
                return None
            cancel = SosCancel(
                device_ts=self.clocks.wall(),
                seq=self.outbox.next_seq(),
                sos_id=sos_id,
                source="voice" if source == "voice" else "button",
                phrase=phrase,
            )
            self.outbox.put_held(
                f"cancel:{sos_id}", self.address.topic(Channel.SOS_CANCEL), cancel.to_payload()
            )
        log.warning("sos cancelled by resident", extra={"sos_id": sos_id, "source": source})
        self._show(Feedback.CANCELLED)
        self._say("sos_cancelled")
        if self.link is not None:
            self.link.wake()
        return sos_id

    def on_motion(self) -> None:
        """A PIR motion episode began: counted for the heartbeat; an event at most once per
        heartbeat interval, so a restless evening does not flood the broker."""
        now = self.clocks.monotonic()
        with self._lock:
            self._motion += 1
            quiet = (
                self._last_motion_event_at is None
                or now - self._last_motion_event_at >= self.config.heartbeat_interval_s
            )
            if not quiet:
                return
            self._last_motion_event_at = now
            event = MotionEvent(device_ts=self.clocks.wall(), seq=self.outbox.next_seq())
            self.outbox.put(self.address.topic(Channel.MOTION), event.to_payload(), droppable=True)
        if self.link is not None:
            self.link.wake()

    def request_call(self, phrase: str | None = None) -> str:
        """The resident asked for a call from the welfare office: stored on disk like an SOS
        (not droppable), sent on ``event/request``; returns its message id."""
        with self._lock:
            event = CallRequest(
                device_ts=self.clocks.wall(),
                seq=self.outbox.next_seq(),
                phrase=phrase,
                language="ko" if self.phrases.language == "ko" else "en",
            )
            self.outbox.put(self.address.topic(Channel.REQUEST), event.to_payload())
        log.info("call requested", extra={"message_id": event.message_id})
        self._say("request_sent")
        if self.link is not None:
            self.link.wake()
        return event.message_id

    def on_detection(self, detection: Detection) -> None:
        """The spotter recognised a phrase: :class:`VoiceSosDecider` says what to do."""
        if detection.kind is Kind.REQUEST:
            self.request_call(detection.phrase)
            return
        with self._lock:
            decisions = self.voice_sos.hear(detection, self.clocks.monotonic())
        self._act(decisions)

    def check_voice_question(self) -> None:
        """Send a doubtful voice SOS whose question went unanswered."""
        with self._lock:
            decisions = self.voice_sos.tick(self.clocks.monotonic())
        self._act(decisions)

    def _act(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            extra = {"phrase": decision.phrase, "confidence": round(decision.confidence, 3)}
            if decision.action is Action.SEND:
                self.raise_sos("voice", decision.phrase)
            elif decision.action is Action.ASK:
                log.warning("voice sos unsure: asking the resident", extra=extra)
                self._say("sos_ask")
            elif decision.action is Action.DROP:
                log.warning("voice sos declined by the resident", extra=extra)
            elif decision.action is Action.CANCEL:
                self.request_cancel("voice", decision.phrase)

    def on_command(self, command: CommandMessage) -> None:
        """The collector answered: an SOS or a cancel is stored on its side."""
        if isinstance(command, SosAck):
            self.outbox.release(command.sos_id)
            if self.tracker.confirmed(command.sos_id):
                self._show(Feedback.CONFIRMED)
                self._say("sos_confirmed")
            log.info(
                "sos confirmed", extra={"sos_id": command.sos_id, "dispatch": command.dispatch_id}
            )
        elif isinstance(command, CancelAck):
            self.outbox.release(f"cancel:{command.sos_id}")
            log.info("cancel confirmed", extra={"sos_id": command.sos_id})

    def on_checkin(self, request: CheckinRequest) -> None:
        """The collector asks whether the resident is all right (a quiet home)."""
        if self.checkin is None:
            log.warning("check-in requested but this agent has no speaker path")
            return
        self.checkin.on_request(request)

    def on_transcript(self, transcript: str) -> bool:
        """Every transcript passes here first; True if it answered a listening check-in."""
        return self.checkin is not None and self.checkin.listening and self.checkin.hear(transcript)

    # -- periodic work ---------------------------------------------------------------------

    def counters(self) -> Counters:
        voice = self.voice
        return Counters(
            motion=self._motion,
            speech_s=0.0 if voice is None else voice.speech_s,
            wake_words=0 if voice is None else voice.wake_word_count,
            interactions=0 if voice is None else voice.interactions,
            button_presses=self._button_presses,
        )

    def send_heartbeat(self) -> None:
        with self._lock:
            heartbeat = self._heartbeats.build(
                self.counters(),
                now=self.clocks.monotonic(),
                wall_ts=self.clocks.wall(),
                seq=self.outbox.next_seq(),
                audio_overruns=0 if self.voice is None else self.voice.audio_overruns,
                outbox_depth=self.outbox.depth(),
                coalesced=self.outbox.dropped_since_last(),
            )
            self.outbox.put(
                self.address.topic(Channel.HEARTBEAT), heartbeat.to_payload(), droppable=True
            )
        if self.link is not None:
            self.link.wake()

    def check_delivery(self) -> None:
        """Turn the LED to 'sent' once the broker has acknowledged the SOS (left the outbox)."""
        with self._lock:
            if self._sos_item is None:
                return
            message_id, item_id = self._sos_item
            head = self.outbox.pending(1, after_id=item_id - 1)
            if head and head[0].id == item_id:
                return
            self._sos_item = None
            changed = self.tracker.delivered(message_id)
        if changed:
            self._show(Feedback.SENT)

    def resend_unconfirmed(self) -> None:
        """Send again every SOS or cancel the collector has not confirmed (same message id)."""
        if self.outbox.resend_held():
            log.warning(
                "re-sending unconfirmed SOS/cancel", extra={"held": len(self.outbox.held())}
            )
            if self.link is not None:
                self.link.wake()

    def _loop(self, period_s: float, work: Callable[[], None], name: str) -> None:
        while not self._stop.wait(period_s):
            try:
                work()
            except Exception:
                log.exception("periodic work failed", extra={"job": name})

    def start(self) -> None:
        self.resend_unconfirmed()  # held from before a restart: the collector may never have had it
        if self.link is not None:
            self.link.start()
        if self.voice is not None:
            self.voice.start()
        for period, work, name in (
            (self.config.heartbeat_interval_s, self.send_heartbeat, "heartbeat"),
            (0.1, self.check_delivery, "delivery"),
            (0.2, self.check_voice_question, "voice-question"),
            (self.config.sos_resend_s, self.resend_unconfirmed, "resend"),
            (1.0, self._tick_checkin, "checkin"),
        ):
            t = threading.Thread(
                target=self._loop, args=(period, work, name), name=name, daemon=True
            )
            t.start()
            self._threads.append(t)
        log.info("agent started", extra={"device": self.address.device, "version": self.version})

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self.voice is not None:
            self.voice.stop()
        for part in self.parts:
            close = getattr(part, "close", None)
            if callable(close):
                close()
        if self.link is not None:
            self.link.stop(5.0)
        self.outbox.close()
        log.info("agent stopped")

    def _tick_checkin(self) -> None:
        if self.checkin is not None:
            self.checkin.tick()

    def _show(self, feedback: Feedback) -> None:
        if self.led is not None:
            self.led.show(feedback)

    def _say(self, prompt: str) -> None:
        text = self.phrases.prompts.get(prompt)
        if text:
            self.announcer.say(text)
