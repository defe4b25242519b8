"""The labelled speech set ``bench/speech.py`` and the model-gated tests run: text, voices, noise.

Speech is espeak-ng's Korean voice (several variants, speeds and pitches), resampled to 16 kHz
with sox; noise is sox's pink and brown noise, or *babble* made by overlapping other sentences,
mixed in at a given SNR (speech power over the voiced part / noise power). Everything is
deterministic for a given seed, so two runs hear the same audio.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.audio import read_wav_16k

RATE_HZ = 16000

# Words the resident says to ask for help, to withdraw it and to wake the agent. They are written
# as people say them; what the recogniser must find is in firmware_config/phrases/ko.toml.
SOS_TEXTS = (
    "살려주세요",
    "살려줘",
    "도와주세요",
    "도와줘",
    "일일구 불러줘",
    "구급차 불러줘",
    "구급차 불러주세요",
)
CANCEL_TEXTS = ("취소", "취소해 줘", "괜찮아")
WAKE_TEXTS = ("안부야",)
YES_TEXTS = ("네", "응")

# Everyday talk at home, on the telephone or with a visitor.
EVERYDAY = (
    "밥 먹었어요",
    "오늘 날씨가 참 좋네",
    "아이고 허리야",
    "텔레비전 좀 꺼 줄래",
    "물 한 잔 마시고 싶다",
    "내일은 병원에 가야 해",
    "시장에 가서 두부 좀 사 와",
    "전화 왔어요",
    "손주가 언제 온다고 했지",
    "약 먹을 시간이다",
    "창문 좀 열어 줘",
    "오늘 저녁은 뭐 먹지",
    "김치찌개 끓였어",
    "빨래 좀 걷어야겠다",
    "잠이 잘 안 와",
    "아침에 산책 다녀왔어",
    "경로당에 친구들 만나러 가",
    "무릎이 좀 시리네",
    "보일러 온도 좀 올려 줘",
    "우체국에 다녀올게",
    "은행 문 닫을 시간이네",
    "딸이 반찬을 보내 줬어",
    "아들한테 전화 좀 해 봐야지",
    "화분에 물 줘야겠다",
    "오늘 뉴스 봤어",
    "버스가 안 오네",
    "안경 어디 뒀더라",
    "열쇠를 못 찾겠어",
    "커피 한 잔 할래",
    "라디오 소리 좀 줄여",
    "고양이 밥 줬어",
    "비가 올 것 같아",
    "우산 챙겨 가",
    "택배 왔나 봐",
    "문 좀 닫아 줄래",
    "이 옷 어때",
    "머리 자르러 가야겠다",
    "복지관에서 점심 먹었어",
    "노래 교실 재미있었어",
    "옆집 할머니가 떡을 주셨어",
    "청소기 좀 돌려야겠다",
    "냉장고에 우유 있어",
    "오늘이 무슨 요일이지",
    "달력 좀 봐 줘",
    "생일 축하해",
    "고마워 잘 먹을게",
    "다음 주에 보자",
    "잘 자",
    "좋은 아침이야",
    "수고했어요",
    "천천히 해도 돼",
    "배가 좀 고프네",
    "과일 좀 깎아 줄까",
    "손이 차가워",
    "이불 좀 덮어야겠다",
    "세탁기 다 돌았나",
    "가스 불 껐지",
    "전기요금이 많이 나왔네",
    "동생한테 편지 써야지",
    "사진 좀 찍어 줘",
    "요즘 허리가 많이 좋아졌어",
    "운동 좀 해야 하는데",
    "손주가 학교에 들어갔어",
    "김장은 언제 하지",
    "간장이 다 떨어졌네",
)

# Lines a television or radio would say in the same room.
TV_NEWS = (
    "오늘 서울의 낮 최고 기온은 영상 십 도입니다",
    "정부는 내일 새로운 정책을 발표할 예정입니다",
    "교통사고로 두 명이 다쳐 병원으로 옮겨졌습니다",
    "주식 시장은 오늘 소폭 상승했습니다",
    "내일은 전국에 비가 내리겠습니다",
    "국회는 오늘 본회의를 열고 법안을 통과시켰습니다",
    "대통령은 오늘 해외 순방을 떠났습니다",
    "소방당국은 화재 원인을 조사하고 있습니다",
    "구조대가 현장에 출동해 주민들을 대피시켰습니다",
    "다음 소식입니다",
    "지금까지 뉴스를 전해 드렸습니다",
    "이번 주말에는 단풍 구경하기 좋겠습니다",
    "미세먼지 농도가 나쁨 수준을 보이겠습니다",
    "환율이 다시 올랐습니다",
    "프로야구 결승전이 오늘 저녁 열립니다",
    "축구 대표팀이 승리를 거뒀습니다",
    "태풍이 북상하고 있어 피해가 우려됩니다",
    "경찰은 용의자를 추적하고 있습니다",
    "병원 응급실이 환자들로 붐비고 있습니다",
    "독감 예방 접종을 서두르시기 바랍니다",
    "고속도로는 귀성 차량으로 정체를 빚고 있습니다",
    "물가가 크게 올라 서민들의 부담이 커졌습니다",
    "기상청은 한파 특보를 내렸습니다",
    "오늘의 날씨였습니다",
    "광고 후에 계속됩니다",
    "시청자 여러분 안녕하십니까",
    "산불이 번져 헬기가 투입됐습니다",
    "아파트 가격이 하락세를 보이고 있습니다",
    "정전으로 주민들이 불편을 겪었습니다",
    "올림픽 대표 선수들이 귀국했습니다",
    "살려 달라는 외침이 들렸습니다",
    "구급차가 도착하기까지 십 분이 걸렸습니다",
    "도움을 요청하는 전화가 잇따랐습니다",
    "일일구 구급대가 환자를 이송했습니다",
    "구조 요청이 빗발쳤습니다",
    "노인 일자리 사업이 확대됩니다",
    "기초 연금 지급액이 오릅니다",
    "오늘 밤부터 기온이 뚝 떨어지겠습니다",
    "해안 지역에는 강풍 주의보가 내려졌습니다",
    "선거 결과가 발표되었습니다",
)

# Drama and entertainment lines.
DRAMA = (
    "나 너 좋아해",
    "왜 이제 왔어",
    "그게 무슨 소리야",
    "어머니 저 왔어요",
    "당장 나가",
    "미안해 정말 미안해",
    "우리 헤어지자",
    "거짓말하지 마",
    "다시는 여기 오지 마세요",
    "사랑해요",
    "아버지 제발 그만하세요",
    "이게 다 너 때문이야",
    "언제까지 기다려야 돼",
    "가지 마",
    "내가 다 알아서 할게",
    "걱정하지 마",
    "너 정말 대단하다",
    "그 사람 누구야",
    "여보 나 왔어",
    "어디 아파",
    "도와줄게 걱정 마",
    "살려고 발버둥 쳤어",
    "누가 좀 도와줄 사람 없나",
    "사장님 큰일 났습니다",
    "비켜 비켜",
    "우리 같이 가요",
    "잘 들어 이건 비밀이야",
    "할머니 진지 드세요",
    "오빠 어디야",
    "이리 와 봐",
)

# Sentences that share words or sounds with the SOS, cancel and wake phrases.
NEAR_MISS = (
    "살려고",
    "살려고 왔어",
    "도와줄게",
    "도와줄까",
    "구급차 지나가네",
    "119 번 버스 타고 갔어",
    "일일구 번 버스",
    "취소할까",
    "예약 취소했어",
    "괜찮은 것 같아",
    "안부 전해 줘",
    "안부 전화 왔어",
    "살림살이가 좋아졌네",
    "살려 두자",
    "도와주셔서 감사합니다",
    "숙제 도와줘서 고마워",
    "불러 봤는데 대답이 없어",
    "노래 한 곡 불러 줘",
    "택시 불러 줘",
    "사람 불러 줘",
    "구급상자 어디 있어",
    "주세요 한 그릇",
    "이거 주세요",
    "김밥 두 줄 주세요",
    "살 빼야겠어",
    "도와드릴까요",
    "일일 드라마 시작했다",
    "구급대원이 친절했어",
    "괜히 샀다",
    "소리 좀 줄여 줘",
    "아주 살맛 난다",
    "동생을 불러 줘",
)

NONE_TEXTS = EVERYDAY + TV_NEWS + DRAMA + NEAR_MISS

# espeak-ng voice variants and prosody the set is spoken with: (voice, words per minute, pitch).
VOICES = (
    ("ko", 150, 50),
    ("ko+f2", 130, 60),
    ("ko+f3", 170, 40),
    ("ko+f4", 120, 70),
    ("ko+m3", 160, 30),
)
CONDITIONS = ("clean", "20dB", "10dB", "0dB")
NOISES = ("pink", "brown", "babble")


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled utterance: 16 kHz mono int16 audio, its class and its condition."""

    text: str
    cls: str
    """``sos``, ``cancel``, ``wake``, ``yes`` or ``none``."""
    cond: str
    voice: str
    audio: bytes


@contextmanager
def _cache_write(out: Path) -> Iterator[Path]:
    """A unique scratch name beside ``out``: renamed to ``out`` if the block succeeds, removed
    whatever happens, so two benchmarks can share one cache and a failed render leaves nothing."""
    part = out.with_name(f"{out.stem}.{os.getpid()}-{threading.get_ident()}.part{out.suffix}")
    try:
        yield part
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


class Synth:
    """espeak-ng + sox, caching every rendered utterance on disk by its parameters."""

    def __init__(self, cache_dir: Path) -> None:
        espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
        if espeak is None or sox is None:
            raise RuntimeError("espeak-ng and sox are needed: apt-get install espeak-ng sox")
        self.espeak, self.sox = espeak, sox
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._noise: dict[str, npt.NDArray[np.float64]] = {}

    def _sox(self, source: str, out: Path, *effects: str) -> None:
        """sox from ``source`` (a file, or ``-n`` for none) to 16 kHz mono 16-bit ``out``, with
        repeatable dither (``-R``), so a fresh cache renders the same samples."""
        fmt = ["-r", str(RATE_HZ), "-c", "1", "-b", "16"]
        subprocess.run(
            [self.sox, "-R", source, *fmt, str(out), *effects],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def speak(self, text: str, voice: str = "ko", speed_wpm: int = 150, pitch: int = 50) -> bytes:
        key = hashlib.sha256(f"{text}|{voice}|{speed_wpm}|{pitch}".encode()).hexdigest()[:20]
        out = self.cache_dir / f"{key}.wav"
        if not out.exists():
            with _cache_write(out) as part:
                raw = part.with_name(f"{part.stem}.raw.wav")
                try:
                    subprocess.run(
                        [
                            self.espeak,
                            "-v",
                            voice,
                            "-s",
                            str(speed_wpm),
                            "-p",
                            str(pitch),
                            "-w",
                            str(raw),
                            text,
                        ],
                        check=True,
                        capture_output=True,
                        timeout=60,
                    )
                    self._sox(str(raw), part)
                finally:
                    raw.unlink(missing_ok=True)
        return read_wav_16k(out)

    def noise(self, kind: str, seconds: float, seed: int) -> npt.NDArray[np.float64]:
        """``seconds`` of sox's pink or brown noise (unit RMS), starting where ``seed`` says in one
        minute of it made once per kind."""
        if kind not in self._noise:
            out = self.cache_dir / f"noise-{kind}-60s.wav"
            if not out.exists():
                with _cache_write(out) as part:
                    self._sox("-n", part, "synth", "60", f"{kind}noise", "vol", "0.5")
            x = np.frombuffer(read_wav_16k(out), "<i2").astype(np.float64)
            self._noise[kind] = x / (np.sqrt(np.mean(x**2)) + 1e-9)
        base = self._noise[kind]
        n = int(seconds * RATE_HZ)
        start = seed * 7919 % len(base)
        return np.resize(np.roll(base, -start), n)


def as_float(audio: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(audio, "<i2").astype(np.float64)


def as_bytes(x: npt.NDArray[np.float64]) -> bytes:
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def voiced_power(x: npt.NDArray[np.float64]) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest (the speech, not the pauses)."""
    n = len(x) // 320 * 320
    frames = x[:n].reshape(-1, 320) if n else x.reshape(1, -1)
    power = np.mean(frames**2, axis=1)
    loud = power[power >= power.max() * 1e-3]
    return float(np.mean(loud)) if len(loud) else 0.0


def pad(audio: bytes, before_s: float = 1.0, after_s: float = 1.5) -> bytes:
    return bytes(int(RATE_HZ * before_s) * 2) + audio + bytes(int(RATE_HZ * after_s) * 2)


def mix(
    speech: bytes,
    cond: str,
    noise_kind: str,
    synth: Synth,
    seed: int,
    babble_from: list[bytes] | None = None,
) -> bytes:
    """``speech`` (already padded with silence) with noise at the condition's SNR."""
    x = as_float(speech)
    if cond == "clean":
        return speech
    snr_db = float(cond.removesuffix("dB"))
    if noise_kind == "babble":
        rng = np.random.default_rng(seed)
        n = np.zeros(len(x))
        for other in babble_from or []:
            o = as_float(other)
            start = int(rng.integers(0, max(1, len(x) // 2)))
            seg = np.resize(o, len(x) - start) if len(o) else np.zeros(len(x) - start)
            n[start:] += seg
        n /= np.sqrt(np.mean(n**2)) + 1e-9
    else:
        n = synth.noise(noise_kind, len(x) / RATE_HZ + 0.1, seed)[: len(x)]
    p_speech = voiced_power(x)
    gain = np.sqrt(p_speech / 10 ** (snr_db / 10))
    y = x + gain * n
    peak = float(np.max(np.abs(y))) or 1.0
    if peak > 32000:  # keep the speech-to-noise ratio, avoid clipping
        y *= 32000 / peak
    return as_bytes(y)
