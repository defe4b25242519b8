import numpy as np

from edge_agent.agc import PEAK_LIMIT, GainControl
from edge_agent.vad import level_dbfs

RATE = 16000


def tone(amplitude: float, seconds: float = 0.1) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def test_quiet_speech_is_brought_to_the_target() -> None:
    agc = GainControl(target_dbfs=-20.0, max_gain_db=18.0)
    quiet = tone(1000)  # about -33 dBFS
    out = [agc.process(quiet, voiced=True) for _ in range(5)]
    assert abs(level_dbfs(out[-1]) - -20.0) < 0.5


def test_the_gain_is_bounded() -> None:
    agc = GainControl(target_dbfs=-20.0, max_gain_db=6.0)
    faint = tone(100)  # about -53 dBFS
    for _ in range(5):
        out = agc.process(faint, voiced=True)
    assert agc.gain_db == 6.0
    assert abs(level_dbfs(out) - (level_dbfs(faint) + 6.0)) < 0.5


def test_the_gain_changes_only_on_voiced_blocks() -> None:
    agc = GainControl()
    for _ in range(3):
        agc.process(tone(1000), voiced=False)
    assert agc.gain_db == 0.0
    assert agc.process(tone(1000), voiced=False) == tone(1000)  # unity: untouched
    agc.process(tone(1000), voiced=True)
    gain = agc.gain_db
    assert gain > 0
    # the pause after a word (far below the speech level) does not move it, voiced or not
    agc.process(tone(30), voiced=True)
    agc.process(tone(30), voiced=False)
    assert agc.gain_db == gain


def test_no_clipping() -> None:
    agc = GainControl(target_dbfs=-6.0, max_gain_db=30.0)
    agc.process(tone(500), voiced=True)
    # a loud click after the gain went up: limited, not clipped
    click = np.zeros(RATE // 10)
    click[800] = 20000
    out = np.frombuffer(agc.process(click.astype("<i2").tobytes(), voiced=False), "<i2")
    assert np.max(np.abs(out)) <= PEAK_LIMIT
    loud = np.frombuffer(agc.process(tone(30000), voiced=True), "<i2")
    assert np.max(np.abs(loud)) <= PEAK_LIMIT


def test_loud_speech_is_turned_down_within_its_bound() -> None:
    agc = GainControl(target_dbfs=-20.0, min_gain_db=-6.0)
    for _ in range(5):
        agc.process(tone(20000), voiced=True)  # about -7 dBFS
    assert agc.gain_db == -6.0
