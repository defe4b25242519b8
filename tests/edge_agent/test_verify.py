"""``anbu agent verify``'s device checks, in-process: gpiozero mock pins, WAV audio through the
real gate, the model check's own code path. The broker/collector part is in
tests/e2e/test_verify_end_to_end.py."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.audio import WavFileSource
from edge_agent.verify import (
    RealHardware,
    VerifyOptions,
    check_button,
    check_microphone,
    check_pir,
    check_speech_model,
    verify,
)
from firmware_config.device import DeviceConfig


def config(tmp_path: Path, **changes: Any) -> DeviceConfig:
    data: dict[str, Any] = {
        "district": "seodaemun",
        "household_id": "h-1",
        "device_id": "dev-1",
        "outbox_path": str(tmp_path / "outbox.sqlite3"),
        "broker": {"url": "mqtt://127.0.0.1:1", "username": "dev-1", "password": "x"},
        **changes,
    }
    return DeviceConfig.model_validate(data)


class WavHardware(RealHardware):
    """The real clock; the microphone is a WAV file replayed at recording pace."""

    def __init__(self, wav: Path) -> None:
        self.wav = wav

    def microphone(self, config: DeviceConfig) -> WavFileSource:
        return WavFileSource(self.wav, realtime=True)


def later(action: Callable[[], None], delay_s: float = 0.2) -> Callable[[str], None]:
    """A technician who does ``action`` a moment after being asked."""

    def say(_text: str) -> None:
        threading.Timer(delay_s, action).start()

    return say


FAST = VerifyOptions(prompt=False, listen_s=2.0, gpio_timeout_s=3.0)


def test_microphone_passes_when_the_voice_gate_opens(
    tmp_path: Path, write_wav: Callable[..., Path], sos_speech: bytes
) -> None:
    quiet = (np.random.default_rng(1).normal(0, 30, 8000)).astype("<i2").tobytes()
    wav = write_wav(quiet + sos_speech + quiet)
    result = check_microphone(config(tmp_path), WavHardware(wav), FAST, lambda _t: None)
    assert result.status == "PASS", result
    assert "voice gate open for" in result.detail


def test_microphone_fails_on_digital_silence(
    tmp_path: Path, write_wav: Callable[..., Path]
) -> None:
    wav = write_wav(bytes(32000))
    result = check_microphone(config(tmp_path), WavHardware(wav), FAST, lambda _t: None)
    assert result.status == "FAIL" and "only digital silence" in result.detail


def test_microphone_fails_when_nobody_speaks(
    tmp_path: Path, write_wav: Callable[..., Path]
) -> None:
    hiss = (np.random.default_rng(2).normal(0, 30, 32000)).astype("<i2").tobytes()
    result = check_microphone(config(tmp_path), WavHardware(write_wav(hiss)), FAST, print)
    assert result.status == "FAIL" and "voice gate never opened" in result.detail
    assert "vad_threshold_db" in result.detail


def test_microphone_is_skipped_when_audio_is_off(tmp_path: Path) -> None:
    off = config(tmp_path, audio={"enabled": False})
    result = check_microphone(off, RealHardware(), FAST, print)
    assert result.status == "SKIP"


def test_model_check_fails_without_a_model_and_with_a_broken_one(tmp_path: Path) -> None:
    assert (
        check_speech_model(config(tmp_path)).detail == "voice.model_path is not set in the config"
    )
    broken = tmp_path / "model"
    (broken / "graph").mkdir(parents=True)
    result = check_speech_model(config(tmp_path, voice={"model_path": str(broken)}))
    assert result.status == "FAIL" and "PROBLEM" in result.detail


def test_pir_and_button_pass_when_the_technician_waves_and_presses(
    tmp_path: Path, mock_pins: Any
) -> None:
    cfg = config(tmp_path)
    pir = mock_pins.pin(cfg.gpio.pir_pin)
    result = check_pir(cfg, RealHardware(), FAST, later(pir.drive_high))
    assert result.status == "PASS" and f"motion on GPIO {cfg.gpio.pir_pin}" in result.detail

    button = mock_pins.pin(cfg.gpio.sos_button_pin)

    def press_and_release() -> None:
        button.drive_low()
        threading.Timer(0.1, button.drive_high).start()

    result = check_button(cfg, RealHardware(), FAST, later(press_and_release))
    assert result.status == "PASS" and "pressed and released" in result.detail


def test_pir_and_button_fail_when_nothing_happens(tmp_path: Path, mock_pins: Any) -> None:
    cfg = config(tmp_path)
    quick = VerifyOptions(prompt=False, gpio_timeout_s=0.5)
    assert check_pir(cfg, RealHardware(), quick, print).detail.startswith("no motion on GPIO 4")
    assert check_button(cfg, RealHardware(), quick, print).detail.startswith("no press on GPIO")


def test_verify_without_a_broker_fails_and_says_what_failed(tmp_path: Path, mock_pins: Any) -> None:
    from anbu.broker import free_port

    cfg = config(
        tmp_path,
        audio={"enabled": False},
        broker={"url": f"mqtt://127.0.0.1:{free_port()}", "username": "d", "password": "p"},
    )
    out = io.StringIO()
    options = VerifyOptions(prompt=False, broker_timeout_s=1.0, skip=frozenset({"pir", "button"}))
    code = verify(cfg, options, out=out)
    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[0].startswith("anbu agent verify: device dev-1")
    by_name = {line[:12].strip(): line[12:].split(None, 1) for line in lines[1:]}
    assert by_name["microphone"][0] == "SKIP" and by_name["pir"][0] == "SKIP"
    assert by_name["broker"][0] == "FAIL" and "not connected" in by_name["broker"][1]
    assert by_name["test sos"][0] == "SKIP"
    assert lines[-1].split() == ["result", "FAIL", "broker"]


@pytest.mark.parametrize("bad", ["--listen-s=0", "--timeout-s=-1"])
def test_verify_cli_refuses_bad_durations(bad: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "agent.toml"
    path.write_text(
        'district = "d"\nhousehold_id = "h"\ndevice_id = "x"\n[broker]\nurl = "mqtt://h:1"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "anbu", "agent", "verify", "--config", str(path), bad],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "must be more than 0" in result.stderr
