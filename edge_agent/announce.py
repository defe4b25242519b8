"""Spoken prompts to the resident ("도움 요청을 보냈어요"), behind a tiny interface."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import Protocol

log = logging.getLogger("anbu.agent.announce")


class Announcer(Protocol):
    def say(self, text: str) -> None: ...


class LogAnnouncer:
    """Writes prompts to the log only: for devices without a speaker, and for tests."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)
        log.info("prompt", extra={"prompt": text})


class EspeakAnnouncer:
    """Speaks through ``espeak-ng`` on the default output, without waiting for it to finish."""

    def __init__(self, language: str) -> None:
        self.voice = "ko" if language == "ko" else "en-us"
        self.binary = shutil.which("espeak-ng")
        self._current: subprocess.Popen[bytes] | None = None

    def say(self, text: str) -> None:
        log.info("prompt", extra={"prompt": text})
        if self.binary is None:
            return
        if self._current is not None and self._current.poll() is None:
            self._current.terminate()  # the newest news matters most
        self._current = subprocess.Popen(  # noqa: S603 - fixed binary, text is our own prompt
            [self.binary, "-v", self.voice, text],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def make_announcer(language: str, speak: bool) -> Announcer:
    if speak and shutil.which("espeak-ng"):
        return EspeakAnnouncer(language)
    return LogAnnouncer()
