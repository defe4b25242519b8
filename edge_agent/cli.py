"""``anbu agent``: arguments → settings → run. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from firmware_config import ContractError
from firmware_config.device import DeviceConfig, device_config_json_schema, load_device_config

DEFAULT_CONFIG = Path("/etc/anbu/agent.toml")
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

    sub.add_parser("config-schema", help="print the device config JSON schema")
    return p


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
    if args.command == "check-model":
        return _check_model(args)
    try:
        config = load_device_config(args.config)
    except ContractError as exc:
        print(f"anbu agent: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(config.model_dump_json(indent=2, exclude={"broker": {"password"}}))
        return 0
    return _run(config, args)


def _check_model(args: argparse.Namespace) -> int:
    from edge_agent.model_cli import check_model
    from firmware_config.phrases import load_phrase_set

    config: DeviceConfig | None = None
    if args.config is not None:
        try:
            config = load_device_config(args.config)
        except ContractError as exc:
            print(f"anbu agent: {exc}", file=sys.stderr)
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
        log.error("agent cannot start", extra={"error": str(exc)})
        print(f"anbu agent: {exc}", file=sys.stderr)
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
