import numpy as np

from edge_agent.loudness import MIN_LEVEL_DBFS, measure
from edge_agent.transcript import Loudness, Word

RATE = 16000


def tone(seconds: float, amplitude: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def noise(seconds: float, amplitude: float, seed: int = 1) -> bytes:
    x = np.random.default_rng(seed).normal(0, amplitude, int(seconds * RATE))
    return x.astype("<i2").tobytes()


def test_speech_that_stops_with_the_word_is_quiet_after_it() -> None:
    audio = bytes(2 * RATE // 2) + tone(0.6, 8000) + bytes(2 * RATE)
    heard = measure(audio, 10.0, [Word("도와줘", 1.0, 10.5, 11.1)])
    assert heard is not None
    assert heard.after_db == heard.floor_db == MIN_LEVEL_DBFS
    assert heard.voice_after() == 0.0


def test_speech_that_goes_on_after_the_word_is_loud_after_it() -> None:
    # 도와줄게: the recogniser ends 도와줘 at 11.1 s, the speaker goes on to 11.5 s
    audio = bytes(2 * RATE // 2) + tone(1.0, 8000) + bytes(2 * RATE)
    heard = measure(audio, 10.0, [Word("도와줘", 1.0, 10.5, 11.1)])
    assert heard is not None
    after = heard.voice_after()
    assert after is not None and after > 0.9


def test_the_room_is_the_quietest_part_of_the_utterance() -> None:
    # speech over noise at about 0 dB: after the word only the noise remains
    room = noise(3.0, 2000)
    speech = bytes(2 * RATE // 2) + tone(0.6, 2800) + bytes(2 * int(1.9 * RATE))
    mixed = np.frombuffer(room, "<i2").astype(np.int32) + np.frombuffer(speech, "<i2").astype(
        np.int32
    )
    audio = mixed.astype("<i2").tobytes()
    heard = measure(audio, 0.0, [Word("줘", 1.0, 0.5, 1.1)])
    assert heard is not None and heard.words_db - heard.floor_db > 1.0
    after = heard.voice_after()
    assert after is not None and after < 0.4


def test_nothing_to_measure() -> None:
    audio = tone(1.0, 8000)
    assert measure(audio, 0.0, []) is None
    assert measure(audio, 0.0, [Word("줘")]) is None  # no word times
    assert measure(audio, 0.0, [Word("줘", 1.0, 0.2, 0.95)]) is None  # no audio after the word


def test_voice_after_needs_words_above_the_room() -> None:
    assert Loudness(-20.0, -20.0, -20.5).voice_after() is None
    assert Loudness(-20.0, -45.0, -70.0).voice_after() == 0.5
