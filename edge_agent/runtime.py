"""Builds a running agent from a :class:`DeviceConfig`: the only place parts are chosen."""

from __future__ import annotations

import logging

from anbu import __version__
from edge_agent.agent import Agent
from edge_agent.announce import Announcer, make_announcer
from edge_agent.link import Link
from edge_agent.outbox import Outbox
from firmware_config.device import DeviceConfig
from firmware_config.phrases import load_phrase_set

log = logging.getLogger("anbu.agent")


def build_agent(
    config: DeviceConfig,
    *,
    gpio: bool = True,
    voice: bool = True,
    announcer: Announcer | None = None,
    outbox_max_droppable: int = 100,
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
        client_id=f"anbu-{config.device_id}",
        agent_version=__version__,
        on_command=agent.on_command,
    )
    if gpio:
        attach_gpio(agent, config)
    if voice and config.audio.enabled:
        attach_voice(agent, config)
    return agent


def attach_gpio(agent: Agent, config: DeviceConfig) -> None:
    """SOS button, PIR and status LED on the pins the config names (gpiozero)."""
    from edge_agent.sensors import MotionDetector, SosButton, StatusLed

    gpio = config.gpio
    agent.led = StatusLed(gpio.led_pin)
    agent.parts.append(
        SosButton(
            gpio.sos_button_pin,
            long_press_s=gpio.long_press_s,
            on_sos=lambda: agent.raise_sos("button"),
            on_cancel=lambda: agent.request_cancel("button"),
        )
    )
    agent.parts.append(MotionDetector(gpio.pir_pin, on_motion=agent.on_motion))


def attach_voice(agent: Agent, config: DeviceConfig) -> None:
    """Microphone → voice-activity gate → Vosk (grammar) → spotter."""
    raise NotImplementedError
