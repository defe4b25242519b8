"""Device configuration: the one file provisioning writes and the edge agent reads.

Loaded from a TOML file (rendered by Ansible from ``templates/agent.toml.j2``) and overlaid with
environment variables ``ANBU_AGENT__SECTION__FIELD`` (for example
``ANBU_AGENT__BROKER__PASSWORD``), so secrets need not sit in the file. A bad value stops start-up
with a :class:`~firmware_config.errors.ContractError` naming the field, the value and the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware_config.errors import ContractError
from firmware_config.topics import ID_PATTERN, DeviceAddress

ENV_PREFIX = "ANBU_AGENT__"

_Frozen = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(BaseModel):
    """How the device reaches the MQTT broker."""

    model_config = _Frozen

    url: str = Field(description="mqtt://host:port (passwords) or mqtts://host:port (TLS)")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    ca_file: Path | None = Field(default=None, description="CA that signed the broker certificate")
    cert_file: Path | None = Field(default=None, description="this device's client certificate")
    key_file: Path | None = Field(default=None, description="this device's private key")
    keepalive_s: int = Field(default=30, ge=5, le=600)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _credentials(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.tls and self.ca_file is None:
            raise ValueError("mqtts:// needs ca_file")
        if self.cert_file is not None and not self.tls:
            raise ValueError("a client certificate needs an mqtts:// url")
        if self.username is not None and self.password is None:
            raise ValueError("username is set but password is not")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class GpioConfig(BaseModel):
    """BCM pin numbers of the parts wired to the Pi's header."""

    model_config = _Frozen

    sos_button_pin: int = Field(default=17, ge=2, le=27, description="button to GND, pull-up")
    pir_pin: int = Field(default=4, ge=2, le=27, description="PIR output (HC-SR501 OUT)")
    led_pin: int = Field(default=27, ge=2, le=27, description="status LED via 330 ohm to GND")
    long_press_s: float = Field(default=2.0, gt=0, le=10, description="hold this long to cancel")

    @model_validator(mode="after")
    def _distinct(self) -> GpioConfig:
        pins = [self.sos_button_pin, self.pir_pin, self.led_pin]
        if len(set(pins)) != len(pins):
            raise ValueError(f"pins must be distinct, got {pins}")
        return self


class AudioConfig(BaseModel):
    """Microphone capture and the voice-activity gate."""

    model_config = _Frozen

    enabled: bool = True
    device: str | None = Field(default=None, description="PortAudio device name; None = default")
    capture_rate_hz: int = Field(default=16000, description="rate the device is opened at")
    block_ms: int = Field(default=100, ge=10, le=1000)
    queue_blocks: int = Field(default=50, ge=2, le=10000, description="bounded audio queue")
    vad: Literal["energy", "micro", "silero", "webrtc"] = Field(
        default="silero", description="voice gate: a trained VAD, or energy above the noise floor"
    )
    vad_speech_probability: float = Field(
        default=0.5, ge=0, le=1, description="trained VAD: speech probability that opens the gate"
    )
    vad_threshold_db: float = Field(default=12.0, gt=0, le=60, description="dB above noise floor")
    preroll_ms: int = Field(default=300, ge=0, le=2000)
    hangover_ms: int = Field(default=600, ge=0, le=5000)
    agc: bool = Field(
        default=False, description="automatic gain control between the voice gate and Vosk"
    )
    agc_target_dbfs: float = Field(
        default=-20.0, ge=-40, le=-6, description="level the gain control aims voiced speech at"
    )
    agc_max_gain_db: float = Field(
        default=18.0, ge=0, le=40, description="most the gain control amplifies (dB)"
    )

    @field_validator("capture_rate_hz")
    @classmethod
    def _rate(cls, value: int) -> int:
        if value not in (16000, 32000, 44100, 48000):
            raise ValueError("must be one of 16000, 32000, 44100, 48000")
        return value


class VoiceConfig(BaseModel):
    """Offline speech recognition."""

    model_config = _Frozen

    model_path: Path | None = Field(default=None, description="unpacked Vosk model directory")
    manifest_path: Path | None = Field(
        default=None, description="checksum manifest; default MODEL_PATH/anbu-manifest.json"
    )
    phrase_set: Path | None = Field(default=None, description="TOML phrase set; default: built-in")
    ask_below_confidence: float = Field(
        default=0.9,
        ge=0,
        le=1.01,
        description="a voice SOS heard with less confidence asks 'shall I ask for help?' first",
    )
    answer_timeout_s: float = Field(
        default=8.0, ge=1, le=60, description="how long that question waits for an answer"
    )
    send_unanswered: bool = Field(
        default=True, description="no answer to that question sends the SOS (false: drops it)"
    )
    filler_count: int = Field(
        default=30,
        ge=0,
        le=2000,
        description="filler words competing with the phrases: more = fewer false SOS, fewer hits",
    )
    sos_max_unknown_words: int = Field(
        default=1,
        ge=0,
        le=20,
        description="[unk] words allowed in an utterance beside an SOS phrase",
    )
    sos_max_extra_words: int | None = Field(
        default=1,
        ge=0,
        le=20,
        description="words of any kind allowed beside an SOS phrase (null: any number)",
    )
    sos_min_confidence: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="an SOS phrase whose weakest word is heard with less confidence is ignored",
    )
    sos_min_phrase_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of the utterance's time the SOS phrase must span (0: not checked)",
    )
    sos_max_words_after: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="words allowed after an SOS phrase's last word (null: any; 0: it ends the "
        "utterance)",
    )
    sos_max_voice_after: float | None = Field(
        default=0.3,
        ge=0,
        le=2,
        description="loudness just after the utterance's last word, 0 = the room's quiet, "
        "1 = the words' level, above which an SOS phrase is not taken (null: not checked)",
    )
    kws_verifier: Path | None = Field(
        default=None,
        description="keyword-classifier head (.npz from bench/speech_kws.py --save-head) that must "
        "also hear an SOS phrase before a voice SOS is taken (null: off; needs openwakeword and "
        "onnxruntime installed)",
    )
    kws_detector: Path | None = Field(
        default=None,
        description="keyword-classifier head (.npz from bench/speech_kws.py --save-head) whose "
        "detections are the voice SOS, in place of the recogniser's SOS phrases; the recogniser "
        "still hears cancel, wake word and answers. A bare file name names a head the package "
        "ships: ko-sos.npz (null: off; needs openwakeword and onnxruntime installed)",
    )
    kws_wake: Path | None = Field(
        default=None,
        description="keyword-classifier head (.npz from bench/speech_kws.py --target wake "
        "--save-head) whose detections are the wake word, in place of the recogniser's; a hit "
        "arms the spotter for a request. A bare file name names a head the package ships: "
        "ko-wake.npz (null: off; needs openwakeword and onnxruntime installed)",
    )
    kws_hold_s: float = Field(
        default=0.5,
        ge=0,
        le=3,
        description="how long a kws_detector hit waits, while the voice gate is still open, for "
        "its peak score and a cancel heard with it before it is passed on (it goes at once when "
        "the gate closes; a cancel heard after it marks the sent SOS cancelled, and the "
        "collector keeps its dispatch open)",
    )

    @model_validator(mode="after")
    def _one_classifier_role(self) -> VoiceConfig:
        if self.kws_verifier is not None and self.kws_detector is not None:
            raise ValueError(
                "kws_verifier and kws_detector are both set: the keyword classifier either "
                "confirms the recogniser's SOS or detects SOS itself, not both"
            )
        return self

    @property
    def manifest(self) -> Path | None:
        if self.manifest_path is not None:
            return self.manifest_path
        return None if self.model_path is None else self.model_path / "anbu-manifest.json"


class DeviceConfig(BaseModel):
    """Everything one home's agent needs to know."""

    model_config = _Frozen

    district: str = Field(pattern=ID_PATTERN)
    household_id: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)
    language: Literal["ko", "en"] = "ko"
    heartbeat_interval_s: float = Field(default=60.0, ge=1, le=3600)
    cancel_window_s: float = Field(default=30.0, ge=0, le=600)
    sos_resend_s: float = Field(
        default=15.0, ge=0.5, le=600, description="re-send an SOS the collector has not confirmed"
    )
    outbox_path: Path = Path("/var/lib/anbu/outbox.sqlite3")
    broker: BrokerConfig
    gpio: GpioConfig = GpioConfig()
    audio: AudioConfig = AudioConfig()
    voice: VoiceConfig = VoiceConfig()

    @property
    def address(self) -> DeviceAddress:
        return DeviceAddress(self.district, self.household_id, self.device_id)


def _overlay_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ContractError(f"environment {key}: {part} is not a section")
        if path:
            node[path[-1]] = value
    return data


def format_validation_error(exc: ValidationError, data: Mapping[str, Any], source: str) -> str:
    """One line per bad field: ``field=value: reason (source)``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value: Any = data
        for part in err["loc"]:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None and err["type"] == "missing":
            shown = "(missing)"
        elif isinstance(value, Mapping):
            shown = "[section]"  # never echo a whole section: it may hold a password
        elif loc.split(".")[-1] in ("password",):
            shown = "'***'"
        else:
            shown = repr(value)
        lines.append(f"{loc or '(root)'}={shown}: {err['msg']} (in {source})")
    return "invalid device configuration:\n  " + "\n  ".join(lines)


def load_device_config(
    path: Path | str | None, environ: Mapping[str, str] | None = None
) -> DeviceConfig:
    """Read ``path`` (TOML) and ``ANBU_AGENT__*`` variables into a validated config."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        path = Path(path)
        source = f"{path} and environment"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ContractError(f"configuration file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ContractError(f"configuration file {path} is not valid TOML: {exc}") from exc
    data = _overlay_env(data, environ)
    try:
        return DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ContractError(format_validation_error(exc, data, source)) from exc


def device_config_json_schema() -> dict[str, Any]:
    """The JSON schema of the device configuration, for provisioning tools and docs."""
    return DeviceConfig.model_json_schema()
