"""The voice path in one thread: microphone → voice-activity gate → (gain) → recogniser → spotter.

The recogniser hears audio only inside a gate segment (pre-roll first), so a quiet home costs one
RMS per block. Each transcript goes to the spotter with the injected clock's time; a detection goes
to ``on_detection``. A failing recogniser or callback is logged and the loop carries on: the voice
path must outlive a bad utterance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_agent.agc import GainControl
from edge_agent.audio import AudioSource
from edge_agent.recognizer import Recognizer
from edge_agent.spotter import Detection, Kind, Spotter
from edge_agent.transcript import Transcript
from edge_agent.vad import Audio, GateEvent, SegmentStart, VoiceActivityGate

if TYPE_CHECKING:
    from edge_agent.kws import SosDetector, SosVerifier

log = logging.getLogger("anbu.agent.voice")

CLASSIFIER_PHRASE = "(keyword classifier)"
"""``Detection.phrase`` of an SOS or wake word the keyword classifier heard (it names no
phrase)."""


class VoicePipeline:
    """Runs the voice path on its own thread between ``start()`` and ``stop()``.

    ``on_detection`` is called on that thread (or, for an utterance cut off by ``stop()``, on the
    caller's): keep it quick — hand the detection over, do not send or speak from it.

    >>> pipeline = VoicePipeline(mic, gate, vosk, spotter, on_detection=print)  # doctest: +SKIP
    >>> pipeline.start(); ...; pipeline.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        source: AudioSource,
        gate: VoiceActivityGate,
        recognizer: Recognizer,
        spotter: Spotter,
        on_detection: Callable[[Detection], None],
        clock: Callable[[], float] = time.monotonic,
        read_timeout_s: float = 0.2,
        answering: Callable[[], bool] = lambda: False,
        on_transcript: Callable[[str], bool] | None = None,
        gain: GainControl | None = None,
        verifier: SosVerifier | None = None,
        detector: SosDetector | None = None,
        detector_hold_s: float = 0.5,
        cancel_veto_s: float = 2.0,
        wake_detector: SosDetector | None = None,
    ) -> None:
        self.source = source
        self.gate = gate
        self.recognizer = recognizer
        self.spotter = spotter
        self.on_detection = on_detection
        self.on_transcript = on_transcript
        """Sees each transcript first (a listening check-in); True means it was an answer."""
        self.gain = gain
        """Automatic gain control between the gate and the recogniser (None: audio as captured)."""
        self.verifier = verifier
        """Hears every block; a spotted SOS it does not confirm is dropped (None: not asked)."""
        self.sos_unconfirmed = 0
        """Spotted SOS phrases the verifier did not confirm (and that were therefore dropped)."""
        self._verifier_failing = False
        self.detector = detector
        """Hears every block; its hits are the voice SOS, and the recogniser's SOS phrases are
        not (None: the recogniser's spotter decides). The recogniser still hears cancel, wake
        word, answers and requests."""
        self.detector_hold_s = detector_hold_s
        """A hit waits for the end of its gate segment (so that the recogniser's transcript of
        it can veto it with a cancel), but never longer than this (``voice.kws_hold_s``): a
        cancel heard later only marks the sent SOS cancelled (its dispatch stays open)."""
        self.cancel_veto_s = cancel_veto_s
        """A hit within this long after a cancel was heard is vetoed."""
        self.sos_vetoed = 0
        """Classifier hits dropped because the recogniser heard a cancel with them."""
        self.sos_ignored = 0
        """SOS phrases the recogniser spotted while the classifier decides (not acted on)."""
        self._pending_at: float | None = None
        self._peak = 0.0
        self._last_cancel_at: float | None = None
        self._hit_segment: int | None = None
        """The gate segment the last classifier hit came in: its transcript answers nothing."""
        self._detector_failing = False
        self.wake_detector = wake_detector
        """Hears every block; its hits are the wake word (they arm the spotter for a request),
        and the recogniser's bare wake words are not (None: the recogniser's spotter decides)."""
        self.wake_ignored = 0
        """Wake words the recogniser spotted while the classifier decides (not acted on)."""
        self._wake_failing = False
        self.clock = clock
        self.read_timeout_s = read_timeout_s
        self.answering = answering
        """True while the agent waits for a yes or no (the spotter then listens for one)."""
        self.utterances = 0
        """Non-empty transcripts (including ``[unk]``: someone said something)."""
        self.wake_word_count = 0
        """Bare wake words heard (``Kind.WAKE`` detections)."""
        self.interactions = 0
        """Detections of any kind: SOS, cancel, wake word, check-in answer."""
        self.errors = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def speech_s(self) -> float:
        """Seconds of audio the gate judged to be voice."""
        return self.gate.speech_s

    @property
    def audio_overruns(self) -> int:
        return self.source.overruns

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="anbu-voice", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, then close an open segment (its transcript is still spotted)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout_s)
        self.source.stop()
        if thread.is_alive():  # stuck in the recogniser or a callback: do not race it
            log.warning("voice thread did not stop within %.1f s", timeout_s)
            return
        self.end_of_stream()

    def end_of_stream(self) -> None:
        """Close an open segment so its transcript is still spotted, and pass on a classifier hit
        still held for it (``stop`` calls this)."""
        for event in self.gate.close():
            self._handle(event)
        if self.detector is not None:
            self._settle(self.detector, None)

    def process(self, block: bytes) -> None:
        """One block through gate, recogniser and spotter (the thread calls this; so may tests)."""
        if self.verifier is not None:
            _, self._verifier_failing = self._hear_safely(
                "SOS verifier", self.verifier.hear, block, self._verifier_failing
            )
        detector = self.detector
        hit: float | None = None
        if detector is not None:
            hit, self._detector_failing = self._hear_safely(
                "SOS detector", detector.hear, block, self._detector_failing
            )
        if self.wake_detector is not None:
            woke, self._wake_failing = self._hear_safely(
                "wake-word detector", self.wake_detector.hear, block, self._wake_failing
            )
            if woke is not None:
                # arm first: the recogniser's transcript of "안부야, 전화해 줘" comes later
                self.spotter.arm(self.clock())
                self._pass_on(Detection(Kind.WAKE, CLASSIFIER_PHRASE, woke))
        for event in self.gate.process(block):
            self._handle(event)
        if detector is not None:
            self._settle(detector, hit)

    def _hear_safely(
        self, name: str, hear: Callable[[bytes], float | None], block: bytes, failing: bool
    ) -> tuple[float | None, bool]:
        """``hear(block)`` and whether it is failing now: a failure is counted each time and
        logged once per run of failures (not ten times a second)."""
        try:
            return hear(block), False
        except Exception:
            self.errors += 1
            if not failing:
                log.exception("%s failed on a block (again: counted in errors)", name)
            return None, True

    def _settle(self, detector: SosDetector, hit: float | None) -> None:
        """Hold a classifier hit until its segment ends (or ``detector_hold_s``), then pass it
        on as an SOS, sure if its peak score reached the strong threshold, unless a cancel was
        heard with it."""
        now = self.clock()
        if hit is not None and self._pending_at is None:
            cancelled_at = self._last_cancel_at
            if cancelled_at is not None and now - cancelled_at <= self.cancel_veto_s:
                self._veto(hit)
                return
            self._pending_at, self._peak = now, hit
            self._hit_segment = self.gate.segments
        if self._pending_at is None:
            return
        self._peak = max(self._peak, detector.last_score)
        if self.gate.is_open and now - self._pending_at < self.detector_hold_s:
            return
        self._pending_at = None
        sure = self._peak >= detector.strong_at
        self._pass_on(Detection(Kind.SOS, CLASSIFIER_PHRASE, self._peak, sure=sure))

    def _veto(self, score: float) -> None:
        self.sos_vetoed += 1
        log.info("keyword classifier heard sos (score %.2f) with a cancel: dropped", score)

    def _run(self) -> None:
        while not self._stopping.is_set():
            block = self.source.read(self.read_timeout_s)
            if block is not None:
                self.process(block)

    def _handle(self, event: GateEvent) -> None:
        try:
            if isinstance(event, SegmentStart):
                self.recognizer.reset()
                preroll = event.preroll
                if preroll and self.gain is not None:
                    preroll = self.gain.process(preroll, voiced=False)
                text = self.recognizer.accept(preroll) if preroll else None
            elif isinstance(event, Audio):
                block = event.block
                if self.gain is not None:
                    block = self.gain.process(block, voiced=True)
                text = self.recognizer.accept(block)
            else:
                text = self.recognizer.flush()
        except Exception:
            self.errors += 1
            log.exception("recogniser failed; dropping this utterance")
            self._safe_reset()
            return
        if text:
            self._hear(text)

    def _hear(self, transcript: Transcript | str) -> None:
        self.utterances += 1
        if self.on_transcript is not None:
            text = transcript if isinstance(transcript, str) else transcript.text
            try:
                if self.on_transcript(text):
                    self.interactions += 1
                    return  # a check-in answer, not a command
            except Exception:
                self.errors += 1
                log.exception("on_transcript failed")
        detection = self.spotter.hear(transcript, self.clock(), answering=self.answering())
        if detection is None:
            return
        # (a failing classifier leaves the recogniser's wake word standing)
        if (
            detection.kind is Kind.WAKE
            and self.wake_detector is not None
            and not self._wake_failing
        ):
            self.wake_ignored += 1
            log.debug("recogniser heard the wake word: the classifier decides")
            return
        if self.detector is not None:
            if detection.kind is Kind.SOS and not self._detector_failing:
                # (a failing classifier leaves the recogniser's SOS standing: voice SOS goes on)
                self.sos_ignored += 1
                log.debug("recogniser heard sos (%s): the classifier decides", detection.phrase)
                return
            if detection.kind in (Kind.YES, Kind.NO) and self._hit_segment == self.gate.segments:
                # the utterance that raised the SOS cannot answer the question about it
                log.debug("heard %s in the SOS's own utterance: not an answer", detection.kind)
                return
            if detection.kind is Kind.CANCEL:
                self._last_cancel_at = self.clock()
                if self._pending_at is not None:
                    self._veto(self._peak)
                    self._pending_at = None
        if (
            detection.kind is Kind.SOS
            and self.verifier is not None
            and not self._confirmed(self.verifier)
        ):
            self.sos_unconfirmed += 1
            log.info("heard sos (%s), not confirmed by the verifier: dropped", detection.phrase)
            return
        self._pass_on(detection)

    def _pass_on(self, detection: Detection) -> None:
        self.interactions += 1
        if detection.kind is Kind.WAKE:
            self.wake_word_count += 1
        log.info(
            "heard %s (%s, confidence %.2f)",
            detection.kind.value,
            detection.phrase,
            detection.confidence,
        )
        try:
            self.on_detection(detection)
        except Exception:
            self.errors += 1
            log.exception("on_detection failed for %s", detection)

    def _confirmed(self, verifier: SosVerifier) -> bool:
        """The verifier's word; a verifier that fails confirms (the recogniser's SOS stands)."""
        try:
            return verifier.confirms()
        except Exception:
            self.errors += 1
            log.exception("SOS verifier failed; taking the SOS as heard")
            return True

    def _safe_reset(self) -> None:
        try:
            self.recognizer.reset()
        except Exception:
            log.exception("recogniser reset failed")
