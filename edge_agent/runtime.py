"""Builds a running agent from a :class:`DeviceConfig`: the only place parts are chosen."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from anbu import __version__
from edge_agent.agent import Agent
from edge_agent.announce import Announcer, make_announcer
from edge_agent.checkin import CheckinResponder
from edge_agent.link import Link
from edge_agent.outbox import Outbox
from firmware_config.device import AudioConfig, DeviceConfig, VoiceConfig
from firmware_config.phrases import PhraseSet, load_phrase_set

if TYPE_CHECKING:
    from edge_agent.agc import GainControl
    from edge_agent.kws import KeywordHead, SosDetector, SosVerifier
    from edge_agent.speech_embedding import SpeechEmbedding
    from edge_agent.spotter import Spotter
    from edge_agent.vad import VoiceActivityGate

log = logging.getLogger("anbu.agent")

NO_GPIO_DRIVER = (
    "no GPIO driver: on a Raspberry Pi install the pin library (pip install 'anbu[edge]' brings "
    "lgpio; or apt-get install python3-lgpio), elsewhere run with --no-gpio"
)


class GpioUnavailable(RuntimeError):
    """gpiozero found no pin factory (not a Pi, or the pin library is missing)."""


def build_agent(
    config: DeviceConfig,
    *,
    gpio: bool = True,
    voice: bool = True,
    announcer: Announcer | None = None,
    outbox_max_droppable: int = 100,
    recognizer_stand_in: bool = False,
) -> Agent:
    """An agent with its link, and (when asked) its GPIO parts and voice pipeline."""
    phrases = load_phrase_set(config.language, config.voice.phrase_set)
    outbox = Outbox(config.outbox_path, max_droppable=outbox_max_droppable)
    agent = Agent(
        config,
        phrases,
        outbox,
        announcer or make_announcer(config.language, speak=config.audio.enabled),
        version=__version__,
    )
    agent.link = Link(
        config.broker,
        config.address,
        outbox,
        # the broker binds each device's client id to its device id (firmware_config/acl.py)
        client_id=config.device_id,
        agent_version=__version__,
        on_command=agent.on_command,
        on_checkin=agent.on_checkin,
    )
    agent.checkin = CheckinResponder(
        config.address,
        phrases,
        agent.announcer,
        outbox,
        wall=time.time,
        on_answer_queued=agent.link.wake,
    )
    if gpio:
        attach_gpio_or_explain(agent, config)
    if voice and config.audio.enabled:
        attach_voice(agent, config, stand_in=recognizer_stand_in)
    return agent


def _ignore(_result: object) -> None:
    return None


def attach_gpio_or_explain(agent: Agent, config: DeviceConfig) -> None:
    """:func:`attach_gpio`, turning gpiozero's missing pin factory into :class:`GpioUnavailable`."""
    import warnings

    from gpiozero.exc import BadPinFactory, PinFactoryFallback

    with warnings.catch_warnings():
        # gpiozero warns once per factory it tries before giving up; the error says it all.
        warnings.simplefilter("ignore", PinFactoryFallback)
        try:
            attach_gpio(agent, config)
        except BadPinFactory as exc:
            for part in agent.parts:
                close = getattr(part, "close", None)
                if callable(close):
                    close()
            agent.parts.clear()
            raise GpioUnavailable(NO_GPIO_DRIVER) from exc


def attach_gpio(agent: Agent, config: DeviceConfig) -> None:
    """SOS button, PIR and status LED on the pins the config names (gpiozero)."""
    from edge_agent.sensors import MotionDetector, SosButton, StatusLed
    from edge_agent.sos import Feedback

    gpio = config.gpio
    led = StatusLed.from_config(gpio)
    agent.led = led
    agent.parts.append(led)
    agent.parts.append(
        SosButton.from_config(
            gpio,
            on_sos=lambda: _ignore(agent.raise_sos("button")),
            on_cancel=lambda: _ignore(agent.request_cancel("button")),
            # a voice SOS can be withdrawn with a long press too
            sos_pending=lambda: (
                agent.tracker.feedback in (Feedback.SENDING, Feedback.SENT, Feedback.CONFIRMED)
            ),
            cancel_window_s=config.cancel_window_s,
        )
    )
    agent.parts.append(MotionDetector.from_config(gpio, on_motion=agent.on_motion))


def make_gate(audio: AudioConfig) -> VoiceActivityGate:
    """The voice gate the config names: energy, or a trained VAD (edge_agent.vad_models)."""
    from edge_agent.vad import VoiceActivityGate
    from edge_agent.vad_models import make_detector

    detector = None if audio.vad == "energy" else make_detector(audio.vad)
    return VoiceActivityGate.from_config(
        audio, detector=detector, speech_probability=audio.vad_speech_probability
    )


def make_gain(audio: AudioConfig) -> GainControl | None:
    """The gain control between gate and recogniser, when the config asks for one."""
    from edge_agent.agc import GainControl

    if not audio.agc:
        return None
    return GainControl(target_dbfs=audio.agc_target_dbfs, max_gain_db=audio.agc_max_gain_db)


def make_verifier(voice: VoiceConfig) -> SosVerifier | None:
    """The keyword classifier that must confirm a voice SOS, when ``voice.kws_verifier`` names
    its head (off by default; see docs/speech.md, *A keyword classifier*)."""
    if voice.kws_verifier is None:
        return None
    from edge_agent.kws import EmbeddingVerifier, KeywordHead, resolve_head

    head = KeywordHead.load(resolve_head(voice.kws_verifier))
    log.info("voice SOS needs the keyword classifier too (%s)", voice.kws_verifier)
    return EmbeddingVerifier(_speech_embedding("voice.kws_verifier"), head)


def _speech_embedding(setting: str) -> SpeechEmbedding:
    """openWakeWord's two models on onnxruntime, or an error that says what to install."""
    from edge_agent.speech_embedding import EmbeddingModelError, SpeechEmbedding

    try:
        return SpeechEmbedding.from_openwakeword()
    except ImportError as exc:
        raise EmbeddingModelError(
            f"{setting} needs onnxruntime and openwakeword==0.5.1 installed ({exc})"
        ) from exc


def _sos_head(voice: VoiceConfig) -> KeywordHead | None:
    """The head ``voice.kws_detector`` names (None: off), loaded and announced."""
    if voice.kws_detector is None:
        return None
    from edge_agent.kws import KeywordHead, resolve_head

    head = KeywordHead.load(resolve_head(voice.kws_detector))
    log.info(
        "voice SOS is the keyword classifier's (%s; detect at %.3f, send without asking at %.3f)",
        voice.kws_detector,
        head.detect_at,
        head.strong_at,
    )
    return head


def make_detector(voice: VoiceConfig) -> SosDetector | None:
    """The keyword classifier whose detections are the voice SOS, when ``voice.kws_detector``
    names its head (off by default; see docs/speech.md, *The keyword classifier as the SOS
    detector*)."""
    head = _sos_head(voice)
    if head is None:
        return None
    from edge_agent.kws import EmbeddingDetector

    return EmbeddingDetector(_speech_embedding("voice.kws_detector"), head)


def make_detectors(voice: VoiceConfig) -> tuple[SosDetector | None, SosDetector | None]:
    """The SOS detector (``voice.kws_detector``) and the wake-word detector (``voice.kws_wake``)
    the config names, sharing one embedding model and stream (one cost for both)."""
    if voice.kws_wake is None:
        return make_detector(voice), None
    from edge_agent.kws import KeywordHead, detector_pair, resolve_head

    wake = KeywordHead.load(resolve_head(voice.kws_wake))
    log.info(
        "the wake word is the keyword classifier's (%s, at %.3f)", voice.kws_wake, wake.detect_at
    )
    return detector_pair(_speech_embedding("voice.kws_wake"), _sos_head(voice), wake)


def make_spotter(phrases: PhraseSet, voice: VoiceConfig | None = None) -> Spotter:
    """The phrase spotter the agent listens with, taking SOS by the config's rule."""
    from edge_agent.spotter import SosRule, Spotter

    voice = voice or VoiceConfig()
    return Spotter(
        phrases,
        rule=SosRule(
            max_unknown_words=voice.sos_max_unknown_words,
            max_extra_words=voice.sos_max_extra_words,
            min_confidence=voice.sos_min_confidence,
            min_phrase_share=voice.sos_min_phrase_share,
            max_words_after=voice.sos_max_words_after,
            max_voice_after=voice.sos_max_voice_after,
        ),
    )


def attach_voice(agent: Agent, config: DeviceConfig, *, stand_in: bool = False) -> None:
    """Microphone → voice-activity gate → Vosk (grammar) → spotter, on its own thread.

    ``stand_in`` puts :class:`edge_agent.fakes.FakeRecognizer` in Vosk's place (benchmarks and
    tests on machines without a model); it never recognises anything.
    """
    from edge_agent.audio import SoundDeviceSource
    from edge_agent.recognizer import ModelError, Recognizer, RecognizerSettings, VoskRecognizer
    from edge_agent.voice import VoicePipeline

    recognizer: Recognizer
    if stand_in:
        from edge_agent.fakes import FakeRecognizer

        log.warning("recognizer stand-in: nothing will be recognised")
        recognizer = FakeRecognizer()
    elif config.voice.model_path is None:
        raise ModelError(
            "voice.model_path is not set: give the unpacked Vosk model directory in the config "
            "(see README, 'Speech model'), or run with --no-audio"
        )
    else:
        recognizer = VoskRecognizer(
            config.voice.model_path,
            agent.phrases,
            config.voice.manifest,
            RecognizerSettings(filler_count=config.voice.filler_count),
        )
    detector, wake_detector = make_detectors(config.voice)
    agent.voice = VoicePipeline(
        SoundDeviceSource(config.audio),
        make_gate(config.audio),
        recognizer,
        make_spotter(agent.phrases, config.voice),
        on_detection=agent.on_detection,
        on_transcript=agent.on_transcript,
        answering=lambda: agent.voice_sos.asking,
        gain=make_gain(config.audio),
        verifier=make_verifier(config.voice),
        detector=detector,
        detector_hold_s=config.voice.kws_hold_s,
        wake_detector=wake_detector,
    )
