"""``anbu agent``: arguments → settings → run. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from firmware_config import ContractError
from firmware_config.device import DeviceConfig, device_config_json_schema, load_device_config

DEFAULT_CONFIG = Path("/etc/anbu/agent.toml")
VERIFY_CHECKS = ("microphone", "model", "pir", "button", "broker", "heartbeat", "test sos")
log = logging.getLogger("anbu.agent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anbu agent", description="The Anbu edge agent.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent (the default)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="device config (TOML)")
    run.add_argument("--no-audio", action="store_true", help="do not open the microphone")
    run.add_argument("--no-gpio", action="store_true", help="no button, PIR or LED")
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--gpio-control", type=Path, help=argparse.SUPPRESS)  # tests only: mock pins
    # benchmarks/tests only, where no Vosk model exists: edge_agent.fakes.FakeRecognizer
    run.add_argument("--recognizer-stand-in", action="store_true", help=argparse.SUPPRESS)

    check = sub.add_parser("check-config", help="validate a device config and print it")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    model = sub.add_parser("check-model", help="does the model work with the phrase set?")
    model.add_argument("--config", type=Path, help="take model, manifest and phrases from here")
    model.add_argument("--model", type=Path, help="model directory (overrides the config)")
    model.add_argument("--manifest", type=Path, help="manifest (default MODEL/anbu-manifest.json)")
    model.add_argument("--language", choices=["ko", "en"], default=None)
    model.add_argument("--phrases", type=Path, help="phrase set TOML (default: built-in)")

    manifest = sub.add_parser("write-manifest", help="record the model's checksums (once)")
    manifest.add_argument("--model", type=Path, required=True)
    manifest.add_argument("--manifest", type=Path)
    manifest.add_argument(
        "--language",
        choices=["ko", "en"],
        default=None,
        help="the model's language (default: what its words are written in)",
    )

    verify = sub.add_parser(
        "verify",
        help="the on-site check: microphone, model, PIR, button, broker, collector, test SOS",
        description="The technician's check before leaving the home: one PASS/FAIL/SKIP line per "
        "check, exit 0 when nothing failed. Stop the anbu-agent service first. The test SOS is "
        "marked as a test: the collector records and acknowledges it and dispatches nobody.",
    )
    verify.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="device config")
    verify.add_argument(
        "--collector-url",
        default=os.environ.get("ANBU_VERIFY_COLLECTOR_URL"),
        help="collector base URL, to see it record the heartbeat and the test SOS "
        "(default $ANBU_VERIFY_COLLECTOR_URL)",
    )
    verify.add_argument(
        "--api-token-file",
        type=Path,
        help="file holding the collector API token (default $ANBU_VERIFY_API_TOKEN)",
    )
    verify.add_argument(
        "--no-prompt",
        action="store_true",
        help="do not ask the technician to speak, wave and press (automation; waits still apply)",
    )
    verify.add_argument("--listen-s", type=float, default=4.0, help="microphone seconds (4)")
    verify.add_argument(
        "--gpio-timeout-s", type=float, default=30.0, help="wait for wave / press (30)"
    )
    verify.add_argument(
        "--timeout-s", type=float, default=20.0, help="wait for the broker and collector (20)"
    )
    verify.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=list(VERIFY_CHECKS),
        help="leave a check out (repeatable), e.g. --skip microphone on a Pi without one",
    )
    verify.add_argument("--log-level", default="WARNING")
    verify.add_argument("--gpio-control", type=Path, help=argparse.SUPPRESS)  # tests: mock pins

    sub.add_parser("config-schema", help="print the device config JSON schema")
    sub.add_parser("example-config", help="print an example agent.toml to start from")
    return p


def example_config_text() -> str:
    """The example configuration shipped in the package (firmware_config/templates/)."""
    from importlib.resources import files

    return (files("firmware_config") / "templates" / "agent.example.toml").read_text("utf-8")


def load_config_or_explain(path: Path) -> DeviceConfig | None:
    """The config, or None after one message on stderr that says how to give another one."""
    try:
        return load_device_config(path)
    except ContractError as exc:
        message = str(exc)
        if not path.exists():
            message += (
                "; give the right one with --config PATH "
                "(start from `anbu agent example-config > agent.toml`)"
            )
        print(f"anbu agent: {message}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("--") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    args = _parser().parse_args(args_list)
    if args.command == "config-schema":
        print(json.dumps(device_config_json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.command == "write-manifest":
        from edge_agent.model_cli import write_manifest_cmd

        manifest = args.manifest or args.model / "anbu-manifest.json"
        return write_manifest_cmd(args.model, manifest, language=args.language)
    if args.command == "example-config":
        print(example_config_text(), end="")
        return 0
    if args.command == "check-model":
        return _check_model(args)
    config = load_config_or_explain(args.config)
    if config is None:
        return 2
    if args.command == "check-config":
        print(config.model_dump_json(indent=2, exclude={"broker": {"password"}}))
        return 0
    if args.command == "verify":
        return _verify(config, args)
    return _run(config, args)


def _verify(config: DeviceConfig, args: argparse.Namespace) -> int:
    from anbu import logs
    from edge_agent.verify import VerifyOptions, verify

    for name, value in (
        ("--listen-s", args.listen_s),
        ("--gpio-timeout-s", args.gpio_timeout_s),
        ("--timeout-s", args.timeout_s),
    ):
        if not value > 0:
            print(f"anbu agent verify: {name} must be more than 0", file=sys.stderr)
            return 2
    token = os.environ.get("ANBU_VERIFY_API_TOKEN")
    if args.api_token_file is not None:
        try:
            token = args.api_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"anbu agent verify: --api-token-file: {exc}", file=sys.stderr)
            return 2
    logs.setup(args.log_level.upper())
    control = None
    if args.gpio_control is not None:
        from gpiozero import Device

        from edge_agent.gpio_control import GpioControl

        if Device.pin_factory is None and os.environ.get("GPIOZERO_PIN_FACTORY") == "mock":
            from gpiozero.pins.mock import MockFactory

            Device.pin_factory = MockFactory()  # gpiozero would make it at the first device
        control = GpioControl(args.gpio_control)
    options = VerifyOptions(
        prompt=not args.no_prompt,
        listen_s=args.listen_s,
        gpio_timeout_s=args.gpio_timeout_s,
        broker_timeout_s=args.timeout_s,
        collector_timeout_s=args.timeout_s,
        collector_url=args.collector_url,
        api_token=token,
        skip=frozenset(args.skip),
    )
    try:
        return verify(config, options, out=sys.stdout)
    finally:
        if control is not None:
            control.close()


def _check_model(args: argparse.Namespace) -> int:
    from edge_agent.model_cli import check_model
    from firmware_config.phrases import load_phrase_set

    config: DeviceConfig | None = None
    if args.config is not None:
        config = load_config_or_explain(args.config)
        if config is None:
            return 2
    model = args.model or (config.voice.model_path if config else None)
    if model is None:
        print("anbu agent: give --model PATH or a --config with voice.model_path", file=sys.stderr)
        return 2
    manifest = args.manifest or (
        config.voice.manifest if config and not args.model else model / "anbu-manifest.json"
    )
    language = args.language or (config.language if config else "ko")
    phrases = load_phrase_set(
        language, args.phrases or (config.voice.phrase_set if config else None)
    )
    return check_model(model, manifest, phrases)


def _run(config: DeviceConfig, args: argparse.Namespace) -> int:
    from anbu import logs
    from edge_agent.runtime import build_agent

    logs.setup(args.log_level.upper())
    try:
        agent = build_agent(
            config,
            gpio=not args.no_gpio,
            voice=not args.no_audio,
            recognizer_stand_in=args.recognizer_stand_in,
        )
    except (ContractError, RuntimeError, OSError) as exc:
        # One structured line (stderr, so the journal has it), never a traceback.
        log.error("agent cannot start", extra={"error": str(exc)})
        return 2
    control = None
    if args.gpio_control is not None:
        from edge_agent.gpio_control import GpioControl

        control = GpioControl(args.gpio_control)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.start()
    print("agent running", flush=True)
    stop.wait()
    agent.stop()
    if control is not None:
        control.close()
    return 0
