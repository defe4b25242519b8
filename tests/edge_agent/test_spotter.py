import pytest

from edge_agent.spotter import Kind, Spotter, normalise
from edge_agent.transcript import Transcript, Word
from firmware_config.phrases import load_phrase_set


@pytest.fixture
def ko() -> Spotter:
    return Spotter(load_phrase_set("ko"), wake_window_s=8)


@pytest.fixture
def en() -> Spotter:
    return Spotter(load_phrase_set("en"), wake_window_s=8)


@pytest.mark.parametrize(
    "heard",
    [
        "살려줘",
        "살려 줘",
        "살려주세요",
        "살려 주세요",
        "살려줘요",
        "[unk] 살려 줘",
        "아 살려줘!",
    ],
)
def test_korean_sos_tolerates_spacing_and_polite_endings(ko: Spotter, heard: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert detection.phrase in ("살려 줘", "살려 주세요")


@pytest.mark.parametrize(
    ("heard", "phrase"),
    [
        ("도와 주세요", "도와줘"),
        ("도와주 세요", "도와줘"),
        ("일일구 불러 줘", "일일 구 불러 줘"),
        ("일일 구 불러 줘", "일일 구 불러 줘"),
        ("119 불러주세요", "일일 구 불러 줘"),
        ("구급차 불러 주세요", "구급차 불러 줘"),
    ],
)
def test_other_korean_sos_phrases(ko: Spotter, heard: str, phrase: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS and detection.phrase == phrase


def test_sos_needs_no_wake_word(ko: Spotter) -> None:
    detection = ko.hear("[unk] 도와줘", now=0)
    assert detection is not None and detection.kind is Kind.SOS


@pytest.mark.parametrize("heard", ["취소 아니 살려줘", "괜찮아 도와줘", "살려 줘 괜찮아"])
def test_cancel_is_decided_before_sos(ko: Spotter, heard: str) -> None:
    """Where both match, the cancel wins: a cancel phrase never raises an SOS."""
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


@pytest.mark.parametrize(
    "heard",
    [
        "살려줘서",  # one word that only begins like the phrase
        "살려 [unk] 줘",  # a filler between the words
        "도와 [unk] 주세요",
        "[unk] [unk] 도와줘",  # a longer sentence that happens to contain it
    ],
)
def test_sos_must_be_whole_words_in_a_short_utterance(ko: Spotter, heard: str) -> None:
    assert ko.hear(heard, now=0) is None


def test_confidence_is_the_weakest_word_of_the_phrase(ko: Spotter) -> None:
    heard = Transcript((Word("[unk]", 0.3), Word("살려", 0.95), Word("줘", 0.6)))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert detection.confidence == 0.6


def test_yes_and_no_only_while_an_answer_is_expected(ko: Spotter) -> None:
    assert ko.hear("응", now=0) is None
    yes = ko.hear("응", now=0, answering=True)
    no = ko.hear("아니요", now=0, answering=True)
    assert yes is not None and yes.kind is Kind.YES
    assert no is not None and no.kind is Kind.NO
    cancel = ko.hear("괜찮아", now=0, answering=True)
    assert cancel is not None and cancel.kind is Kind.CANCEL


@pytest.mark.parametrize("heard", ["취소", "취소해 줘", "괜찮아", "괜찮아요"])
def test_korean_cancel(ko: Spotter, heard: str) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


@pytest.mark.parametrize("heard", ["", "   ", "[unk]", "[unk] [unk]", "오늘 날씨 좋네", "살려"])
def test_nothing_for_other_speech(ko: Spotter, heard: str) -> None:
    assert ko.hear(heard, now=0) is None


def test_checkin_needs_the_wake_word_within_its_window(ko: Spotter) -> None:
    assert ko.hear("네", now=0) is None
    wake = ko.hear("안부야", now=10)
    assert wake is not None and wake.kind is Kind.WAKE
    answer = ko.hear("네", now=17)
    assert answer is not None and answer.kind is Kind.CHECKIN
    assert ko.hear("네", now=18) is None  # the window closes after one answer
    ko.hear("안부야", now=20)
    assert ko.hear("네", now=28.5) is None  # too late


@pytest.mark.parametrize(
    ("heard", "kind", "phrase"),
    [
        ("help me", Kind.SOS, "help me"),
        ("HELP ME PLEASE", Kind.SOS, "help me"),
        ("please help", Kind.SOS, "help"),
        ("call an ambulance", Kind.SOS, "call an ambulance"),
        ("i'm fine", Kind.CANCEL, "i'm fine"),
        ("im fine", Kind.CANCEL, "i'm fine"),
        ("hey anbu", Kind.WAKE, "hey anbu"),
        ("hey anbu yes", Kind.CHECKIN, "yes"),
    ],
)
def test_english(en: Spotter, heard: str, kind: Kind, phrase: str) -> None:
    detection = en.hear(heard, now=0)
    assert detection is not None and (detection.kind, detection.phrase) == (kind, phrase)


@pytest.mark.parametrize("heard", ["helpful", "the helper", "cancellation", "yes"])
def test_english_matches_whole_words_only(en: Spotter, heard: str) -> None:
    assert en.hear(heard, now=0) is None


def test_normalise_is_idempotent() -> None:
    for text, lang in [("살려 주세요", "ko"), ("Help Me!", "en")]:
        once = normalise(text, lang)
        assert normalise(once, lang) == once


def _hyp(text: str, confidence: float = 0.4) -> Transcript:
    return Transcript.of(text, confidence)


def test_an_sos_in_a_close_alternative_is_an_sos_with_its_confidence(ko: Spotter) -> None:
    heard = Transcript(_hyp("[unk] 예 [unk] 세요").words, (_hyp("[unk] 살려 주세요", 0.3),))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.SOS
    assert (detection.phrase, detection.confidence) == ("살려 줘", 0.3)  # 주세요 folds to 줘


def test_an_alternative_with_a_cancel_phrase_vetoes_an_sos_from_the_alternatives(
    ko: Spotter,
) -> None:
    heard = Transcript(_hyp("[unk] 예").words, (_hyp("도와줘"), _hyp("괜찮아")))
    assert ko.hear(heard, now=0) is None


def test_the_best_hypothesis_still_decides_a_cancel(ko: Spotter) -> None:
    heard = Transcript(_hyp("괜찮아").words, (_hyp("살려 줘"),))
    detection = ko.hear(heard, now=0)
    assert detection is not None and detection.kind is Kind.CANCEL


def test_alternatives_give_no_wake_word_or_checkin(ko: Spotter) -> None:
    assert ko.hear(Transcript(_hyp("[unk]").words, (_hyp("안부 야"), _hyp("네"))), now=0) is None


def test_a_long_alternative_is_no_sos(ko: Spotter) -> None:
    heard = Transcript(_hyp("[unk]").words, (_hyp("[unk] [unk] 살려 줘 [unk]"),))
    assert ko.hear(heard, now=0) is None


# --- a cancel heard anywhere vetoes an SOS; the SOS rule -----------------------------------------


def _words(*texts: str, confidence: float = 1.0) -> tuple[Word, ...]:
    return tuple(Word(t, confidence) for t in texts)


@pytest.mark.parametrize(
    "heard",
    [
        # a cancel word in the best hypothesis, even where no cancel *phrase* matches there
        Transcript(_words("취소", "[unk]", "살려", "주세요")),
        Transcript(_words("살려", "줘", "[unk]", "괜찮아")),
        # a cancel phrase, or a cancel word, only in an alternative
        Transcript(
            _words("살려", "주세요"), alternatives=(Transcript(_words("취소", "해", "줘")),)
        ),
        Transcript(
            _words("도와줘"), alternatives=(Transcript(_words("[unk]", "괜찮아", "[unk]")),)
        ),
        # a cancel word only in the partial results the recogniser then dropped
        Transcript(_words("구", "[unk]", "살려", "주세요"), also_heard=("취소",)),
    ],
)
def test_a_cancel_heard_anywhere_is_never_an_sos(ko: Spotter, heard: Transcript) -> None:
    detection = ko.hear(heard, now=0)
    assert detection is None or detection.kind is not Kind.SOS


def test_the_cancel_veto_holds_for_every_rule_and_every_sos_phrase() -> None:
    """By construction: no setting of the SOS rule lets an SOS through a heard cancel word."""
    from edge_agent.spotter import SosRule

    phrases = load_phrase_set("ko")
    loose = SosRule(max_unknown_words=20, max_extra_words=None, min_confidence=0.0)
    final = SosRule(max_words_after=0, max_voice_after=0.5)
    for rule in (SosRule(), loose, final):
        spotter = Spotter(phrases, rule=rule)
        for sos in phrases.sos:
            for word in phrases.cancel_words:
                for heard in (
                    Transcript(_words(*sos.split(), word)),
                    Transcript(_words(word, *sos.split())),
                    Transcript(_words(*sos.split()), also_heard=(word,)),
                    Transcript(_words(*sos.split()), alternatives=(Transcript(_words(word)),)),
                ):
                    detection = spotter.hear(heard, now=0)
                    assert detection is None or detection.kind is not Kind.SOS, (rule, heard)
                # and without the cancel word the same SOS is heard (the veto is what stops it)
                detection = spotter.hear(Transcript(_words(*sos.split())), now=0)
                assert detection is not None and detection.kind is Kind.SOS


def test_words_shared_with_sos_phrases_are_not_cancel_words() -> None:
    from firmware_config.errors import ContractError
    from firmware_config.phrases import _parse

    text = 'language = "ko"\nsos = ["살려 줘"]\ncancel = ["취소 해 줘"]\ncancel_words = ["줘"]\n'
    with pytest.raises(ContractError, match="cancel_words"):
        _parse(text, "test")


def test_the_clip_that_was_heard_as_an_sos_is_rejected_by_the_agents_rule() -> None:
    """취소해 줘 (ko+f4, pink noise at 20 dB) came out of the recogniser as this: no cancel word in
    it, so the veto cannot apply; the agent's SOS rule must refuse it on its own."""
    from edge_agent.runtime import make_spotter

    heard = Transcript(
        (Word("구", 1.0), Word("[unk]", 1.0), Word("살려", 0.64), Word("주세요", 1.0))
    )
    detection = make_spotter(load_phrase_set("ko")).hear(heard, now=0)
    assert detection is None or detection.kind is not Kind.SOS


def test_sos_rule_limits_words_beside_the_phrase_and_its_confidence() -> None:
    from edge_agent.spotter import SosRule

    phrases = load_phrase_set("ko")
    strict = Spotter(phrases, rule=SosRule(max_unknown_words=1, max_extra_words=1))
    assert strict.hear("[unk] 살려 주세요", now=0) is not None
    assert strict.hear("구 [unk] 살려 주세요", now=0) is None  # a stray phrase word counts
    sure = Spotter(phrases, rule=SosRule(min_confidence=0.7))
    assert sure.hear(Transcript(_words("살려", "줘", confidence=0.69)), now=0) is None
    detection = sure.hear(Transcript(_words("살려", "줘", confidence=0.7)), now=0)
    assert detection is not None and detection.kind is Kind.SOS


def test_sos_rule_phrase_share_of_the_utterance() -> None:
    from edge_agent.spotter import SosRule

    spotter = Spotter(load_phrase_set("ko"), rule=SosRule(min_phrase_share=0.5))
    short = Transcript(
        (Word("[unk]", 1.0, 0.0, 0.2), Word("살려", 1.0, 0.2, 0.6), Word("줘", 1.0, 0.6, 0.9))
    )
    long = Transcript(
        (Word("[unk]", 1.0, 0.0, 2.0), Word("살려", 1.0, 2.0, 2.3), Word("줘", 1.0, 2.3, 2.5))
    )
    assert spotter.hear(short, now=0) is not None
    assert spotter.hear(long, now=0) is None
    untimed = Transcript(_words("[unk]", "살려", "줘"))  # no word times: not checked
    assert spotter.hear(untimed, now=0) is not None


@pytest.mark.parametrize(
    ("heard", "is_sos"),
    [
        ("도와줘", True),
        ("[unk] 도와줘", True),  # before the phrase is allowed: 아이고 살려 줘
        ("도와줘 [unk]", False),  # 도와줄까: a syllable after it
        ("살려 줘 구", False),
        ("도와주 세요", True),
    ],
)
def test_sos_rule_phrase_must_end_the_utterance(heard: str, is_sos: bool) -> None:
    from edge_agent.spotter import SosRule

    spotter = Spotter(load_phrase_set("ko"), rule=SosRule(max_words_after=0))
    detection = spotter.hear(heard, now=0)
    assert (detection is not None and detection.kind is Kind.SOS) is is_sos
    anywhere = Spotter(load_phrase_set("ko"), rule=SosRule(max_words_after=None))
    assert anywhere.hear(heard, now=0) is not None


def test_sos_rule_voice_after_the_last_word() -> None:
    """도와줄게 heard as 도와줘 with 게 put down as silence: the audio after the word is as loud as
    the word, where after a real 도와줘 it is as quiet as the room."""
    from edge_agent.spotter import SosRule
    from edge_agent.transcript import Loudness

    spotter = Spotter(load_phrase_set("ko"), rule=SosRule(max_voice_after=0.5))
    words = _words("도와줘")
    went_on = Transcript(words, loudness=Loudness(-20.0, -21.0, -70.0))
    stopped = Transcript(words, loudness=Loudness(-20.0, -68.0, -70.0))
    in_noise = Transcript(words, loudness=Loudness(-17.0, -20.0, -21.0))  # 0 dB SNR, stopped
    assert spotter.hear(went_on, now=0) is None
    assert spotter.hear(stopped, now=0) is not None
    assert spotter.hear(in_noise, now=0) is not None
    # no loudness measured, or words not above the room: not checked
    assert spotter.hear(Transcript(words), now=0) is not None
    flat = Transcript(words, loudness=Loudness(-20.0, -20.0, -20.5))
    assert flat.loudness is not None and flat.loudness.voice_after() is None
    assert spotter.hear(flat, now=0) is not None
    unchecked = Spotter(load_phrase_set("ko"), rule=SosRule())
    assert unchecked.hear(went_on, now=0) is not None


def test_competitor_words_begin_like_an_sos_word_but_spell_no_phrase() -> None:
    from edge_agent.grammar import competitor_words

    vocabulary = [
        "살려",
        "살려고",
        "살려줘",
        "살려주",
        "살려보자고요",
        "도와주려",
        "밥",
        "구급차가",
    ]
    found = competitor_words(vocabulary, load_phrase_set("ko"))
    # 살려줘 spells a phrase, 살려주 is part of 살려주세요, 살려보자고요 is too long, 밥 unrelated
    assert set(found) == {"살려고", "도와주려", "구급차가"}
    assert competitor_words(["helpless"], load_phrase_set("en")) == ()
