"""Agent CPU and memory while idle: audio flowing in real time, nobody speaking.

A real ``anbu agent run`` process reads the real ``sounddevice`` input stream from a virtual ALSA
microphone fed in real time (tests/support/virtual_mic.py: a FIFO-backed ``type file`` PCM, paced
at 100 ms blocks) with quiet room noise (about -60 dBFS). GPIO runs on gpiozero mock pins; the
MQTT link talks to a private Mosquitto. The recogniser is Vosk when ``ANBU_VOSK_MODEL_DIR`` names a
model (with its anbu-manifest.json), otherwise ``FakeRecognizer`` stands in — which matters little
for CPU while idle, because the voice-activity gate feeds the recogniser nothing, but the model's
memory (~300 MB for a small model) is then not included: the JSON says which was used.

    python bench/agent_idle.py [--seconds 30] [--warmup 5]

Prints one JSON line last: CPU as a percentage of one core, peak RSS, speech seconds and audio
overruns reported by the agent's own heartbeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_config.messages import Heartbeat, decode_device_message
from firmware_config.topics import Channel, parse
from tests.e2e.processes import start, wait_until
from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker
from tests.support.mqtt_client import TestClient
from tests.support.virtual_mic import paced_mic

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def room_noise(seconds: float = 2.0, dbfs: float = -60.0) -> bytes:
    rng = np.random.default_rng(1)
    amplitude = 32767 * 10 ** (dbfs / 20)
    samples = rng.normal(0, amplitude, int(16000 * seconds)).clip(-32768, 32767)
    return samples.astype("<i2").tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-idle-"))
    model = os.environ.get("ANBU_VOSK_MODEL_DIR")
    broker = start_broker(work / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER))
    config = work / "agent.toml"
    voice = f'[voice]\nmodel_path = "{model}"\n' if model else ""
    config.write_text(
        f"""
district = "seodaemun"
household_id = "h-1"
device_id = "dev-1"
heartbeat_interval_s = 5
outbox_path = "{work / "outbox.sqlite3"}"
[broker]
url = "{broker.url}"
username = "dev-1"
password = "{broker.password("dev-1")}"
[audio]
enabled = true
device = "testmic"
{voice}""",
        encoding="utf-8",
    )
    heartbeats: list[Heartbeat] = []
    with (
        paced_mic(work / "mic", idle_audio=room_noise()) as mic,
        TestClient(broker, COLLECTOR_USER).connect() as sniffer,
    ):
        sniffer.subscribe("anbu/v1/+/+/+/heartbeat")
        env = mic.env({**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
        cmd = ["agent", "run", "--config", str(config)]
        if not model:
            cmd.append("--recognizer-stand-in")
        agent = start(cmd, env, work / "agent.log")
        try:
            wait_until(lambda: "agent running" in agent.text(), 20, "agent start")
            time.sleep(args.warmup)
            pid = agent.popen.pid
            blocks0 = mic.blocks_written
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            peak = 0.0
            while time.monotonic() - t0 < args.seconds:
                peak = max(peak, rss_mib(pid))
                time.sleep(1)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            blocks = mic.blocks_written - blocks0
            for message in sniffer.messages_within(0.5):
                decoded = decode_device_message(Channel.HEARTBEAT, bytes(message.payload))
                assert parse(message.topic).channel is Channel.HEARTBEAT
                assert isinstance(decoded, Heartbeat)
                heartbeats.append(decoded)
        finally:
            agent.stop()
            broker.kill()
    if not heartbeats:
        print(agent.text()[-3000:], file=sys.stderr)
        raise SystemExit("no heartbeats were received: see the agent log above")
    result = {
        "benchmark": "agent_idle_audio_flowing",
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "peak_rss_mib": round(peak, 1),
        "measured_s": round(t1 - t0, 1),
        # the feeder writes a block only when the pipe is nearly empty: a block read is a block
        # the agent's sounddevice stream took; 10 per second is real time
        "audio_blocks_read_per_s": round(blocks / (t1 - t0), 2),
        "speech_s_reported": round(sum(h.speech_s for h in heartbeats), 2),
        "audio_overruns_reported": heartbeats[-1].audio_overruns,
        "heartbeats": len(heartbeats),
        "conditions": {
            "recognizer": "vosk " + model if model else "FakeRecognizer stand-in (no model here)",
            "audio": "virtual ALSA mic, real-time paced 100 ms blocks, room noise -60 dBFS",
            "gpio": "gpiozero MockFactory",
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
