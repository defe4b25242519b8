from edge_agent.heartbeat import Counters, HeartbeatBuilder
from firmware_config.messages import decode_device_message
from firmware_config.topics import Channel


def test_heartbeats_report_the_interval_not_the_totals() -> None:
    b = HeartbeatBuilder("0.1.0", started_at=1000.0)
    first = b.build(
        Counters(motion=3, speech_s=2.5, wake_words=1, interactions=2, button_presses=1),
        now=1060.0,
        wall_ts=1.7e9,
        seq=1,
        audio_overruns=0,
        outbox_depth=0,
    )
    assert (first.motion_count, first.speech_s, first.interactions, first.interval_s) == (
        3,
        2.5,
        2,
        60,
    )
    second = b.build(
        Counters(motion=5, speech_s=2.5, wake_words=1, interactions=2, button_presses=1),
        now=1120.0,
        wall_ts=1.7e9 + 60,
        seq=2,
        audio_overruns=4,
        outbox_depth=3,
        coalesced=2,
    )
    assert (second.motion_count, second.speech_s, second.wake_word_count) == (2, 0.0, 0)
    assert (second.uptime_s, second.audio_overruns, second.outbox_depth, second.coalesced) == (
        120,
        4,
        3,
        2,
    )
    assert decode_device_message(Channel.HEARTBEAT, second.to_payload()) == second
