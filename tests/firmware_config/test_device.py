from pathlib import Path

import pytest

from firmware_config import ContractError
from firmware_config.device import device_config_json_schema, load_device_config

GOOD = """
district = "seodaemun"
household_id = "h0001"
device_id = "d0001"
[broker]
url = "mqtt://broker.local:1883"
username = "d0001"
password = "s3cret"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_with_defaults(tmp_path: Path) -> None:
    config = load_device_config(write(tmp_path, GOOD), environ={})
    assert config.address.base == "anbu/v1/seodaemun/h0001/d0001"
    assert config.heartbeat_interval_s == 60
    assert config.gpio.sos_button_pin == 17
    assert config.broker.port == 1883 and not config.broker.tls
    assert "s3cret" not in repr(config)


def test_environment_overrides_file(tmp_path: Path) -> None:
    env = {"ANBU_AGENT__BROKER__PASSWORD": "from-env", "ANBU_AGENT__HEARTBEAT_INTERVAL_S": "15"}
    config = load_device_config(write(tmp_path, GOOD), environ=env)
    assert config.broker.password == "from-env"
    assert config.heartbeat_interval_s == 15


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ("heartbeat_interval_s = 0", {}, "heartbeat_interval_s=0"),
        ("[gpio]\npir_pin = 17", {}, "pins must be distinct"),
        ("[gpio]\nled_pin = 40", {}, "gpio.led_pin=40"),
        ("", {"ANBU_AGENT__AUDIO__CAPTURE_RATE_HZ": "22050"}, "audio.capture_rate_hz='22050'"),
        ("language = 'jp'", {}, "language='jp'"),
        ("colour = 'red'", {}, "colour='red': Extra inputs"),
        ("[voice]\nsos_max_extra_words = -1", {}, "voice.sos_max_extra_words=-1"),
        ("[voice]\nsos_min_confidence = 1.5", {}, "voice.sos_min_confidence=1.5"),
    ],
)
def test_bad_values_name_field_value_and_file(
    tmp_path: Path, extra: str, env: dict[str, str], expected: str
) -> None:
    text = (
        GOOD + "\n" + extra
        if extra.startswith("[")
        else GOOD.replace("[broker]", extra + "\n[broker]")
    )
    path = write(tmp_path, text)
    with pytest.raises(ContractError) as info:
        load_device_config(path, environ=env)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_tls_needs_ca_and_both_cert_halves(tmp_path: Path) -> None:
    text = GOOD.replace("mqtt://broker.local:1883", "mqtts://broker.local:8883")
    with pytest.raises(ContractError, match="needs ca_file"):
        load_device_config(write(tmp_path, text), environ={})
    text2 = text.replace(
        'password = "s3cret"', 'password = "x"\nca_file = "/ca.pem"\ncert_file = "/c.pem"'
    )
    with pytest.raises(ContractError, match="cert_file and key_file go together"):
        load_device_config(write(tmp_path, text2), environ={})


def test_missing_file_and_bad_toml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_device_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ContractError, match="not valid TOML"):
        load_device_config(write(tmp_path, "district = "), environ={})


def test_password_is_never_echoed_in_errors(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as info:
        text = GOOD.replace("mqtt://broker.local:1883", "mqtts://broker.local:8883")
        load_device_config(write(tmp_path, text), environ={"ANBU_AGENT__BROKER__KEEPALIVE_S": "1"})
    assert "s3cret" not in str(info.value)
    assert "broker.keepalive_s='1'" in str(info.value)
    with pytest.raises(ContractError) as info:
        load_device_config(path=tmp_path / "agent.toml", environ={})
    assert "broker=[section]: Value error, mqtts:// needs ca_file" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_json_schema_is_exported() -> None:
    schema = device_config_json_schema()
    assert {"district", "household_id", "device_id", "broker"} <= set(schema["required"])
