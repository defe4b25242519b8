"""Automatic gain control between the voice gate and the recogniser. Pure: blocks in, blocks out.

A resident who has fallen speaks from the floor, metres from the microphone; 12 dB quieter speech
was recognised far less often (docs/speech.md). Rules:

1. The gain changes only on blocks the gate passes while it is open (``voiced=True``), and only
   on blocks within ``VOICED_WITHIN_DB`` of the speech level heard so far: the room, the
   hangover and the pre-roll never move it.
2. The *speech level* follows those blocks' RMS level (dBFS): at once towards a louder block
   (``attack``), slowly towards a quieter one (``release``).
3. The gain aims the speech level at ``target_dbfs``, within ``min_gain_db`` … ``max_gain_db``,
   and never makes a block's peak exceed ``PEAK_LIMIT`` (no clipping). Within a block it moves
   linearly from the previous block's gain, so there is no step.

>>> agc = GainControl(target_dbfs=-20.0, max_gain_db=18.0)
>>> quiet = b"\\x00\\x02" * 1600  # 100 ms at -36 dBFS
>>> louder = agc.process(quiet, voiced=True)
>>> round(agc.gain_db, 1)
16.1
"""

from __future__ import annotations

import math

import numpy as np

from edge_agent.vad import level_dbfs

PEAK_LIMIT = 32000.0
VOICED_WITHIN_DB = 15.0
"""A block this far below the speech level is a pause, not speech: it does not move the gain."""


class GainControl:
    """Keeps voiced speech near ``target_dbfs`` for the recogniser (rules in the module doc)."""

    def __init__(
        self,
        target_dbfs: float = -20.0,
        max_gain_db: float = 18.0,
        min_gain_db: float = -6.0,
        attack: float = 0.5,
        release: float = 0.05,
    ) -> None:
        self.target_dbfs = target_dbfs
        self.max_gain_db = max_gain_db
        self.min_gain_db = min_gain_db
        self.attack = attack
        """Share of the way the speech level moves towards a louder block, per block."""
        self.release = release
        """The same towards a quieter (but still voiced) block."""
        self.speech_dbfs: float | None = None
        self.gain_db = 0.0

    def process(self, block: bytes, voiced: bool) -> bytes:
        """``block`` (int16) with the gain applied; with ``voiced``, the gain may change first."""
        samples = np.frombuffer(block, dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return block
        start = 10 ** (self.gain_db / 20)
        if voiced:
            self._follow(level_dbfs(block))
        peak = float(np.max(np.abs(samples))) or 1.0
        end = 10 ** (self.gain_db / 20)
        if end > PEAK_LIMIT / peak:
            end = PEAK_LIMIT / peak
            self.gain_db = 20 * math.log10(end)
        start = min(start, PEAK_LIMIT / peak)
        if start == end == 1.0:
            return block
        ramp = np.linspace(start, end, samples.size, endpoint=False) if start != end else end
        out = np.clip(np.rint(samples * ramp), -32768, 32767)
        return out.astype("<i2").tobytes()

    def _follow(self, level: float) -> None:
        if self.speech_dbfs is None:
            self.speech_dbfs = level
        elif level >= self.speech_dbfs:
            self.speech_dbfs += self.attack * (level - self.speech_dbfs)
        elif level >= self.speech_dbfs - VOICED_WITHIN_DB:
            self.speech_dbfs += self.release * (level - self.speech_dbfs)
        else:
            return
        wanted = self.target_dbfs - self.speech_dbfs
        self.gain_db = max(self.min_gain_db, min(self.max_gain_db, wanted))
