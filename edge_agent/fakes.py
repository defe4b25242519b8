"""Stand-ins for adapters that cannot run here. The one place ``Fake…`` classes live.

``FakeRecognizer`` exists because no Vosk model can be downloaded on the build machines: it is a
stand-in for :class:`edge_agent.recognizer.VoskRecognizer`, never used on a device.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class FakeRecognizer:
    """A stand-in because no Vosk model can be downloaded here.

    It does not listen: it returns the next transcript of ``script`` at each segment end
    (``flush``) — or raises it, if it is an exception — and records every byte it is fed, per
    segment, so tests can check what the recogniser would have heard (and that it heard nothing
    during silence).

    >>> rec = FakeRecognizer(["살려 주세요"])
    >>> rec.accept(b"\\x00\\x00"), rec.flush(), rec.flush()
    (None, '살려 주세요', None)
    >>> rec.segments
    [b'\\x00\\x00', b'']
    """

    def __init__(self, script: Iterable[str | Exception | None] = ()) -> None:
        self._script: deque[str | Exception | None] = deque(script)
        self.segments: list[bytes] = []
        """Audio of each finished segment, in order."""
        self._current = bytearray()
        self.resets = 0

    @property
    def fed_bytes(self) -> int:
        """Everything accepted so far, finished segments and the current one."""
        return sum(map(len, self.segments)) + len(self._current)

    @property
    def current(self) -> bytes:
        return bytes(self._current)

    def accept(self, block: bytes) -> str | None:
        self._current += block
        return None

    def flush(self) -> str | None:
        self.segments.append(bytes(self._current))
        self._current.clear()
        step = self._script.popleft() if self._script else None
        if isinstance(step, Exception):
            raise step
        return step

    def reset(self) -> None:
        self.resets += 1
        self._current.clear()


class FakeSosVerifier:
    """A stand-in for :class:`edge_agent.kws.EmbeddingVerifier` (whose head is trained by a bench
    and whose models are an optional install): it confirms, or not, as told, or raises ``fails``
    (on every block too, with ``hearing_fails``), and counts the bytes it heard."""

    def __init__(
        self, confirm: bool, fails: Exception | None = None, hearing_fails: bool = False
    ) -> None:
        self.confirm = confirm
        self.fails = fails
        self.hearing_fails = hearing_fails
        self.heard_bytes = 0
        self.asked = 0

    def hear(self, block: bytes) -> None:
        if self.hearing_fails and self.fails is not None:
            raise self.fails
        self.heard_bytes += len(block)

    def confirms(self) -> bool:
        self.asked += 1
        if self.fails is not None:
            raise self.fails
        return self.confirm


class FakeSosDetector:
    """A stand-in for :class:`edge_agent.kws.EmbeddingDetector`: it "hears" an SOS at the blocks
    it is told (block number → score), or raises ``fails`` on every block, and scores 0 on the
    rest."""

    def __init__(
        self,
        hits: dict[int, float] | None = None,
        strong_at: float = 0.95,
        fails: Exception | None = None,
    ) -> None:
        self.hits = dict(hits or {})
        self._strong_at = strong_at
        self.fails = fails
        self.blocks = 0
        self._last = 0.0

    @property
    def last_score(self) -> float:
        return self._last

    @property
    def strong_at(self) -> float:
        return self._strong_at

    def hear(self, block: bytes) -> float | None:
        n, self.blocks = self.blocks, self.blocks + 1
        if self.fails is not None:
            raise self.fails
        self._last = self.hits.get(n, 0.0)
        return self.hits.get(n)
