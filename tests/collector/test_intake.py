"""The pure rules of the ingest: device clocks, latest state, rollups, life signs."""

import datetime as dt

from collector.domain.intake import (
    KST,
    ClockPolicy,
    HeartbeatFacts,
    daily_rollups,
    device_time,
    latest_per_device,
)

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
POLICY = ClockPolicy(max_ahead_s=300, max_behind_s=30 * 86400)


def facts(device: str, seq: int, at: dt.datetime, **counts: float) -> HeartbeatFacts:
    base: dict[str, float] = dict.fromkeys(
        ("motion_count", "speech_s", "wake_word_count", "interactions", "button_presses",
         "audio_overruns"), 0
    )  # fmt: skip
    base |= {"outbox_depth": seq, "uptime_s": 1.0}
    base.update(counts)
    return HeartbeatFacts(device, seq, at, agent_version=f"v{seq}", **base)  # type: ignore[arg-type]


def test_a_plausible_device_clock_is_kept() -> None:
    when = device_time(NOW.timestamp() - 120, NOW, POLICY)
    assert when.correction is None and when.at == NOW - dt.timedelta(seconds=120)
    held = device_time(NOW.timestamp() - 20 * 86400, NOW, POLICY)  # an SOS held through an outage
    assert held.correction is None


def test_a_clock_ahead_or_far_behind_is_overruled_with_the_reason() -> None:
    ahead = device_time(NOW.timestamp() + 301, NOW, POLICY)
    assert ahead.at == NOW and ahead.correction is not None and "ahead" in ahead.correction
    assert ahead.offset_s == 301
    epoch = device_time(0, NOW, POLICY)  # a Pi without a real-time clock, before NTP
    assert epoch.at == NOW and epoch.correction is not None and "behind" in epoch.correction


def test_the_highest_seq_wins_and_the_latest_life_sign_is_kept() -> None:
    t = NOW
    latest = latest_per_device(
        [
            facts("d1", 5, t, motion_count=1),
            facts("d1", 7, t + dt.timedelta(minutes=2)),
            facts("d1", 6, t + dt.timedelta(minutes=1), speech_s=2.0),
            facts("d2", 1, t),
        ]
    )
    by_device = {d.device_id: d for d in latest}
    assert by_device["d1"].seq == 7 and by_device["d1"].agent_version == "v7"
    assert by_device["d1"].heard_at == t + dt.timedelta(minutes=2)
    assert by_device["d1"].life_sign_at == t + dt.timedelta(minutes=1)
    assert by_device["d2"].life_sign_at is None


def test_rollups_sum_per_device_and_korean_day() -> None:
    late_evening_utc = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)  # 01:00 KST on the 24th
    rows = daily_rollups(
        [
            facts("d1", 1, late_evening_utc, motion_count=2),
            facts("d1", 2, late_evening_utc + dt.timedelta(hours=1), motion_count=3, speech_s=1.5),
            facts("d1", 3, late_evening_utc - dt.timedelta(hours=2), motion_count=1),  # 23:00 KST
        ]
    )
    by_day = {r.day: r for r in rows}
    day = late_evening_utc.astimezone(KST).date()
    assert day == dt.date(2026, 11, 24)
    assert (by_day[day].heartbeats, by_day[day].motion_count, by_day[day].speech_s) == (2, 5, 1.5)
    assert by_day[day].last_seq == 2 and by_day[day].max_outbox_depth == 2
    assert by_day[dt.date(2026, 11, 23)].heartbeats == 1


def test_the_strongest_life_sign_names_the_heartbeat() -> None:
    assert facts("d", 1, NOW).life_sign_kind is None and not facts("d", 1, NOW).is_life_sign
    assert facts("d", 1, NOW, speech_s=0.5).life_sign_kind == "speech"
    assert facts("d", 1, NOW, speech_s=0.5, motion_count=1).life_sign_kind == "motion"
    assert facts("d", 1, NOW, motion_count=1, wake_word_count=1).life_sign_kind == "interaction"
    assert facts("d", 1, NOW, interactions=1, button_presses=1).life_sign_kind == "button"
