"""Test hook: drive gpiozero *mock* pins of a running agent from another process.

With ``GPIOZERO_PIN_FACTORY=mock`` the agent's real ``Button`` and ``MotionSensor`` sit on
gpiozero's ``MockFactory`` pins, which only code in the same process can move. ``anbu agent run
--gpio-control SOCKET`` opens a Unix socket that accepts one command per line:

    press PIN      drive the pin low  (a button to GND is pressed)
    release PIN    drive the pin high
    high PIN       drive the pin high (PIR output: motion)
    low PIN        drive the pin low

and answers ``ok`` or ``error: ...``. It refuses to start unless the pin factory is a MockFactory,
so it can never touch real hardware.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger("anbu.agent.gpio_control")


class GpioControl:
    def __init__(self, path: Path) -> None:
        from gpiozero import Device
        from gpiozero.pins.mock import MockFactory

        if not isinstance(Device.pin_factory, MockFactory):
            raise RuntimeError("--gpio-control needs GPIOZERO_PIN_FACTORY=mock")
        self.factory = Device.pin_factory
        self.path = path
        if path.exists():
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock.listen(4)
        self._thread = threading.Thread(target=self._serve, name="gpio-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rw", encoding="utf-8") as stream:
            for line in stream:
                stream.write(self.execute(line) + "\n")
                stream.flush()

    def execute(self, line: str) -> str:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            return "error: expected 'press|release|high|low PIN'"
        verb, pin = parts[0], self.factory.pin(int(parts[1]))
        if verb in ("press", "low"):
            pin.drive_low()
        elif verb in ("release", "high"):
            pin.drive_high()
        else:
            return f"error: unknown command {verb!r}"
        log.info("mock pin driven", extra={"verb": verb, "pin": parts[1]})
        return "ok"

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
