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
    from edge_agent.kws import SosVerifier

log = logging.getLogger("anbu.agent.voice")


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
        """Close an open segment so its transcript is still spotted (``stop`` calls this)."""
        for event in self.gate.close():
            self._handle(event)

    def process(self, block: bytes) -> None:
        """One block through gate, recogniser and spotter (the thread calls this; so may tests)."""
        if self.verifier is not None:
            try:
                self.verifier.hear(block)
                self._verifier_failing = False
            except Exception:
                self.errors += 1
                if not self._verifier_failing:  # once per run of failures, not ten times a second
                    log.exception("SOS verifier failed on a block (again: counted in errors)")
                self._verifier_failing = True
        for event in self.gate.process(block):
            self._handle(event)

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
        if (
            detection.kind is Kind.SOS
            and self.verifier is not None
            and not self._confirmed(self.verifier)
        ):
            self.sos_unconfirmed += 1
            log.info("heard sos (%s), not confirmed by the verifier: dropped", detection.phrase)
            return
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
