"""``anbu agent verify``: the technician's on-site check, before leaving the home.

Each check prints one line, ``name  PASS|FAIL|SKIP  what was seen``, and the command exits 0 only
when nothing failed:

==============  ==================================================================================
microphone      audio arrives; its level, the noise floor, and whether the voice gate opened
model           the Vosk model and phrase set load (the ``check-model`` code path)
pir             the motion sensor reports motion (the technician waves at it)
button          the SOS button is pressed and released (the technician presses it)
broker          the broker accepts the device's identity (certificate or password)
heartbeat       the collector recorded a new heartbeat from this device (its HTTP API)
test sos        an SOS marked ``test`` is acknowledged by the collector, which recorded it as a
                test and dispatched nobody
==============  ==================================================================================

It uses the device's own configuration and the agent's real parts (link, outbox, gpiozero), but
its own outbox in a temporary folder; stop the ``anbu-agent`` service first (the playbook does),
since two processes cannot own the same pins or MQTT client id.

Hardware and the clock are injected (:class:`Hardware`), so tests run it with gpiozero's mock pins
and a virtual microphone.
"""

from __future__ import annotations

import io
import json
import logging
import statistics
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from firmware_config.device import DeviceConfig

log = logging.getLogger("anbu.agent.verify")

Status = Literal["PASS", "FAIL", "SKIP"]
CHECKS = ("microphone", "model", "pir", "button", "broker", "heartbeat", "test sos")
"""Every check, in the order it runs (edge_agent.cli.VERIFY_CHECKS repeats them for argparse)."""
SILENT_DBFS = -100.0
"""A microphone whose every block is below this delivers digital silence (muted, unplugged)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.name:<12} {self.status:<5} {self.detail}"


@dataclass(frozen=True)
class VerifyOptions:
    """How the check runs; every duration in seconds."""

    prompt: bool = True
    """Ask the technician to speak, wave and press; off for automation (waits still apply)."""
    listen_s: float = 4.0
    gpio_timeout_s: float = 30.0
    broker_timeout_s: float = 20.0
    collector_timeout_s: float = 20.0
    collector_url: str | None = None
    """The collector's base URL (``https://anbu.example.org``); without it the heartbeat and the
    test SOS's record are not looked up."""
    api_token: str | None = field(default=None, repr=False)
    skip: frozenset[str] = frozenset()


class AudioInput(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def read(self, timeout_s: float) -> bytes | None: ...


class Hardware(Protocol):
    """Where verify gets its microphone, and how it reads the clock."""

    def microphone(self, config: DeviceConfig) -> AudioInput: ...
    def monotonic(self) -> float: ...


class RealHardware:
    def microphone(self, config: DeviceConfig) -> AudioInput:
        from edge_agent.audio import SoundDeviceSource

        return SoundDeviceSource(config.audio)

    def monotonic(self) -> float:
        return time.monotonic()


# --- the checks --------------------------------------------------------------------------------


def check_microphone(
    config: DeviceConfig, hardware: Hardware, options: VerifyOptions, say: Callable[[str], None]
) -> CheckResult:
    from edge_agent.audio import AudioError
    from edge_agent.vad import VoiceActivityGate, level_dbfs

    name = "microphone"
    if not config.audio.enabled:
        return CheckResult(name, "SKIP", "audio.enabled is false in the config")
    try:
        mic = hardware.microphone(config)
        mic.start()
    except (AudioError, OSError) as exc:
        return CheckResult(name, "FAIL", f"cannot open the microphone: {exc}")
    say(f"Speak near the device now, for {options.listen_s:g} seconds (say '안녕하세요').")
    gate = VoiceActivityGate.from_config(config.audio)
    levels: list[float] = []
    deadline = hardware.monotonic() + options.listen_s
    try:
        while hardware.monotonic() < deadline:
            block = mic.read(timeout_s=0.5)
            if block is None:
                time.sleep(0.05)  # a source at its end answers at once: do not spin
                continue
            levels.append(level_dbfs(block))
            gate.process(block)
    finally:
        mic.stop()
    if not levels:
        return CheckResult(name, "FAIL", f"no audio arrived in {options.listen_s:g} s")
    median = statistics.median(levels)
    peak = max(levels)
    floor = gate.floor_db if gate.floor_db is not None else median
    seen = (
        f"{len(levels)} blocks; level median {median:.0f} dBFS, peak {peak:.0f} dBFS, "
        f"noise floor {floor:.0f} dBFS"
    )
    if peak < SILENT_DBFS:
        return CheckResult(name, "FAIL", f"{seen}: only digital silence (muted or unplugged?)")
    if gate.speech_s <= 0:
        return CheckResult(
            name,
            "FAIL",
            f"{seen}: the voice gate never opened (speak louder, or lower "
            f"audio.vad_threshold_db from {config.audio.vad_threshold_db:g})",
        )
    return CheckResult(name, "PASS", f"{seen}; voice gate open for {gate.speech_s:.1f} s")


def check_speech_model(config: DeviceConfig) -> CheckResult:
    """The model and phrase set, through the same code as ``anbu agent check-model``."""
    from edge_agent.model_cli import check_model
    from firmware_config.phrases import load_phrase_set

    name = "model"
    if not config.audio.enabled:
        return CheckResult(name, "SKIP", "audio.enabled is false: no speech recognition")
    if config.voice.model_path is None:
        return CheckResult(name, "FAIL", "voice.model_path is not set in the config")
    report = io.StringIO()
    try:
        phrases = load_phrase_set(config.language, config.voice.phrase_set)
        code = check_model(config.voice.model_path, config.voice.manifest, phrases, out=report)
    except Exception as exc:  # whatever breaks, the technician gets a line, not a traceback
        return CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")
    lines = [line.strip() for line in report.getvalue().splitlines() if line.strip()]
    problems = [line for line in lines if "PROBLEM" in line]
    if code == 0:
        return CheckResult(
            name,
            "PASS",
            f"{config.voice.model_path} with the {phrases.language} phrase set (check-model: OK)",
        )
    return CheckResult(name, "FAIL", "; ".join(problems) or (lines[-1] if lines else "failed"))


@contextmanager
def _quiet_gpiozero() -> Iterator[None]:
    import warnings

    from gpiozero.exc import PinFactoryFallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)
        yield


def _gpio_error(name: str, exc: Exception) -> CheckResult:
    from gpiozero.exc import BadPinFactory

    from edge_agent.runtime import NO_GPIO_DRIVER

    if isinstance(exc, BadPinFactory):
        return CheckResult(name, "FAIL", NO_GPIO_DRIVER)
    return CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")


def check_pir(
    config: DeviceConfig, hardware: Hardware, options: VerifyOptions, say: Callable[[str], None]
) -> CheckResult:
    from gpiozero import GPIOZeroError, MotionSensor

    name, pin = "pir", config.gpio.pir_pin
    try:
        with _quiet_gpiozero():
            sensor = MotionSensor(pin)
    except (GPIOZeroError, OSError) as exc:
        return _gpio_error(name, exc)
    try:
        # gpiozero's first sample only sets the initial state: let it settle before asking.
        sensor.wait_for_no_motion(timeout=5)
        if sensor.motion_detected:
            return CheckResult(
                name,
                "FAIL",
                f"GPIO {pin} reports motion all the time (sensor still warming up, "
                "or wired to the wrong pin?)",
            )
        started = hardware.monotonic()
        say(
            f"Wave a hand in front of the motion sensor (GPIO {pin}), "
            f"within {options.gpio_timeout_s:g} s."
        )
        if not sensor.wait_for_motion(timeout=options.gpio_timeout_s):
            return CheckResult(
                name, "FAIL", f"no motion on GPIO {pin} within {options.gpio_timeout_s:g} s"
            )
        return CheckResult(
            name, "PASS", f"motion on GPIO {pin} after {hardware.monotonic() - started:.1f} s"
        )
    finally:
        sensor.close()


def check_button(
    config: DeviceConfig, hardware: Hardware, options: VerifyOptions, say: Callable[[str], None]
) -> CheckResult:
    from gpiozero import Button, GPIOZeroError

    name, pin = "button", config.gpio.sos_button_pin
    try:
        with _quiet_gpiozero():
            button = Button(pin, pull_up=True)
    except (GPIOZeroError, OSError) as exc:
        return _gpio_error(name, exc)
    try:
        if button.is_pressed:
            return CheckResult(
                name,
                "FAIL",
                f"GPIO {pin} reads pressed before anyone pressed it "
                "(button wired to 3.3 V instead of GND, or shorted?)",
            )
        started = hardware.monotonic()
        say(
            f"Press and release the SOS button (GPIO {pin}), within "
            f"{options.gpio_timeout_s:g} s. No help is called: the agent is not running."
        )
        if not button.wait_for_press(timeout=options.gpio_timeout_s):
            return CheckResult(
                name, "FAIL", f"no press on GPIO {pin} within {options.gpio_timeout_s:g} s"
            )
        pressed_after = hardware.monotonic() - started
        if not button.wait_for_release(timeout=options.gpio_timeout_s):
            return CheckResult(name, "FAIL", f"GPIO {pin} pressed but never released")
        return CheckResult(
            name, "PASS", f"pressed and released on GPIO {pin} after {pressed_after:.1f} s"
        )
    finally:
        button.close()


class CollectorApi:
    """The few collector API calls verify makes (standard library only: the Pi has no httpx)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}/api/v1{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"collector URL {self.base_url!r} must start with http(s)://")
        request = urllib.request.Request(url)  # noqa: S310 - scheme checked above
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310
            return json.loads(reply.read())


def _api_error(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        hint = " (wrong or missing API token?)" if exc.code in (401, 403) else ""
        if exc.code == 404:
            hint = " (is this device registered in the collector?)"
        return f"the collector answered HTTP {exc.code}{hint}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach the collector: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _wait(check: Callable[[], bool], timeout_s: float, hardware: Hardware) -> bool:
    deadline = hardware.monotonic() + timeout_s
    while True:
        if check():
            return True
        if hardware.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def check_link(
    config: DeviceConfig, hardware: Hardware, options: VerifyOptions
) -> list[CheckResult]:
    """broker, heartbeat and test sos, through the agent's real link and a temporary outbox."""
    from edge_agent.announce import LogAnnouncer
    from edge_agent.runtime import build_agent

    wanted = [n for n in ("broker", "heartbeat", "test sos") if n not in options.skip]
    if not wanted:
        return []
    api = CollectorApi(options.collector_url, options.api_token) if options.collector_url else None
    results: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="anbu-verify-") as tmp:
        own = config.model_copy(update={"outbox_path": Path(tmp) / "outbox.sqlite3"})
        agent = build_agent(own, gpio=False, voice=False, announcer=LogAnnouncer())
        link = agent.link
        assert link is not None  # noqa: S101 - build_agent always makes one
        where = f"{config.broker.url} as {config.broker.username or 'its certificate'}"
        agent.start()
        try:
            if not _wait(lambda: link.is_connected, options.broker_timeout_s, hardware):
                results.append(
                    CheckResult(
                        "broker",
                        "FAIL",
                        f"not connected to {where} within {options.broker_timeout_s:g} s "
                        "(see the log lines above: refused identity, TLS or network)",
                    )
                )
                for n in ("heartbeat", "test sos"):
                    if n in wanted:
                        results.append(CheckResult(n, "SKIP", "the broker check failed"))
                return results
            if "broker" in wanted:
                results.append(CheckResult("broker", "PASS", f"connected to {where}"))
            if "heartbeat" in wanted:
                results.append(_check_heartbeat(config, agent, api, hardware, options))
            if "test sos" in wanted:
                results.append(_check_test_sos(config, agent, api, hardware, options))
        finally:
            agent.stop()
    return results


def _check_heartbeat(
    config: DeviceConfig,
    agent: Any,
    api: CollectorApi | None,
    hardware: Hardware,
    options: VerifyOptions,
) -> CheckResult:
    name = "heartbeat"
    path = f"/devices/{urllib.parse.quote(config.device_id)}"
    before: str | None = None
    if api is not None:
        try:
            before = api.get(path).get("last_heartbeat_at")
        except Exception as exc:
            return CheckResult(name, "FAIL", _api_error(exc))
    published = agent.link.published_count
    agent.send_heartbeat()
    if not _wait(
        lambda: agent.link.published_count > published, options.broker_timeout_s, hardware
    ):
        return CheckResult(
            name, "FAIL", "the broker did not acknowledge the heartbeat (refused by its ACL?)"
        )
    if api is None:
        return CheckResult(
            name,
            "SKIP",
            "sent and acknowledged by the broker; give "
            "--collector-url to see the collector record it",
        )
    seen: dict[str, Any] = {}

    def recorded() -> bool:
        seen.update(api.get(path))
        return bool(seen.get("last_heartbeat_at")) and seen.get("last_heartbeat_at") != before

    try:
        ok = _wait(recorded, options.collector_timeout_s, hardware)
    except Exception as exc:
        return CheckResult(name, "FAIL", _api_error(exc))
    if not ok:
        return CheckResult(
            name,
            "FAIL",
            f"the collector recorded no new heartbeat within "
            f"{options.collector_timeout_s:g} s (is the device registered to household "
            f"{config.household_id}? its messages are dead-lettered otherwise)",
        )
    return CheckResult(name, "PASS", f"the collector recorded it at {seen['last_heartbeat_at']}")


def _check_test_sos(
    config: DeviceConfig,
    agent: Any,
    api: CollectorApi | None,
    hardware: Hardware,
    options: VerifyOptions,
) -> CheckResult:
    name = "test sos"
    started = hardware.monotonic()
    sos_id = agent.raise_sos("button", test=True)

    def acknowledged() -> bool:
        return all(key != sos_id for key, _topic, _payload in agent.outbox.held())

    if not _wait(acknowledged, options.collector_timeout_s, hardware):
        return CheckResult(
            name,
            "FAIL",
            f"no acknowledgement from the collector within "
            f"{options.collector_timeout_s:g} s (collector down, or the device "
            "not registered?)",
        )
    took = hardware.monotonic() - started
    if api is None:
        return CheckResult(
            name,
            "PASS",
            f"acknowledged by the collector in {took:.1f} s "
            "(give --collector-url to check it dispatched nobody)",
        )
    try:
        records = api.get("/sos-tests", message_id=sos_id)
    except Exception as exc:
        return CheckResult(name, "FAIL", _api_error(exc))
    if len(records) != 1:
        return CheckResult(
            name,
            "FAIL",
            f"acknowledged, but the collector has no test SOS "
            f"{sos_id} (an older collector that treats it as a real SOS?)",
        )
    if records[0]["dispatched"]:
        return CheckResult(
            name, "FAIL", f"the test SOS {sos_id} opened a dispatch: tell the district office now"
        )
    return CheckResult(
        name, "PASS", f"acknowledged in {took:.1f} s; recorded as test {sos_id}, nobody dispatched"
    )


# --- the whole visit ---------------------------------------------------------------------------


def verify(
    config: DeviceConfig,
    options: VerifyOptions,
    *,
    hardware: Hardware | None = None,
    out: TextIO,
    say: Callable[[str], None] | None = None,
) -> int:
    """Run every check not skipped, printing one line each and a result; 0 when none failed."""
    hardware = hardware or RealHardware()
    prompt = say or (lambda text: print(f">>> {text}", file=out, flush=True))

    def tell(text: str) -> None:
        if options.prompt:
            prompt(text)
        else:
            print(f"... {text}", file=out, flush=True)

    print(
        f"anbu agent verify: device {config.device_id} (household {config.household_id}, "
        f"district {config.district})",
        file=out,
        flush=True,
    )
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        print(result.line(), file=out, flush=True)

    steps: list[tuple[str, Callable[[], CheckResult]]] = [
        ("microphone", lambda: check_microphone(config, hardware, options, tell)),
        ("model", lambda: check_speech_model(config)),
        ("pir", lambda: check_pir(config, hardware, options, tell)),
        ("button", lambda: check_button(config, hardware, options, tell)),
    ]
    for name, step in steps:
        record(CheckResult(name, "SKIP", "skipped (--skip)") if name in options.skip else step())
    for result in check_link(config, hardware, options):
        record(result)
    for name in ("broker", "heartbeat", "test sos"):
        if name in options.skip:
            record(CheckResult(name, "SKIP", "skipped (--skip)"))
    failed = [r.name for r in results if r.status == "FAIL"]
    passed = sum(r.status == "PASS" for r in results)
    if failed:
        print(f"{'result':<12} FAIL  {', '.join(failed)}", file=out, flush=True)
        return 1
    print(
        f"{'result':<12} PASS  {passed} passed, {len(results) - passed} skipped",
        file=out,
        flush=True,
    )
    return 0
