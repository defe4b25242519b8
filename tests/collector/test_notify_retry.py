"""Retry decisions for failed notifications (pure, clock passed in)."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.notify.retry import RetryPolicy, next_attempt_at, retry_delay_s

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(max_attempts=8, first_delay_s=2.0, max_delay_s=300.0)


def test_delays_double_from_the_first_and_stop_at_the_cap() -> None:
    assert [retry_delay_s(n, POLICY) for n in range(1, 10)] == [
        2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0,
    ]  # fmt: skip
    assert retry_delay_s(10_000, POLICY) == 300.0


@pytest.mark.parametrize("attempts", range(1, 8))
def test_transient_failures_are_retried_until_the_last_attempt(attempts: int) -> None:
    when = next_attempt_at(attempts=attempts, permanent=False, now=NOW, policy=POLICY)
    assert when == NOW + dt.timedelta(seconds=2.0 * 2 ** (attempts - 1))


def test_the_last_attempt_gives_up() -> None:
    assert next_attempt_at(attempts=8, permanent=False, now=NOW, policy=POLICY) is None
    assert next_attempt_at(attempts=9, permanent=False, now=NOW, policy=POLICY) is None


@pytest.mark.parametrize("attempts", [1, 3, 8])
def test_permanent_failures_give_up_at_once(attempts: int) -> None:
    assert next_attempt_at(attempts=attempts, permanent=True, now=NOW, policy=POLICY) is None


def test_retry_after_lengthens_the_wait_but_never_past_the_cap() -> None:
    def after(retry_after_s: float) -> dt.datetime | None:
        return next_attempt_at(
            attempts=1, permanent=False, now=NOW, policy=POLICY, retry_after_s=retry_after_s
        )

    assert after(0.5) == NOW + dt.timedelta(seconds=2)  # shorter than backoff: backoff wins
    assert after(30) == NOW + dt.timedelta(seconds=30)
    assert after(3600) == NOW + dt.timedelta(seconds=300)


def test_a_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert next_attempt_at(attempts=1, permanent=False, now=NOW, policy=policy) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"first_delay_s": -1.0}, {"first_delay_s": 10.0, "max_delay_s": 5.0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempts", [9, 100, 10_000])
def test_an_open_dispatch_never_runs_out_of_attempts(attempts: int) -> None:
    when = next_attempt_at(
        attempts=attempts, permanent=False, now=NOW, policy=POLICY, dispatch_open=True
    )
    assert when == NOW + dt.timedelta(seconds=300.0)  # the cap: at least every 5 minutes


def test_an_open_dispatch_still_gives_up_on_a_permanent_error() -> None:
    assert (
        next_attempt_at(attempts=1, permanent=True, now=NOW, policy=POLICY, dispatch_open=True)
        is None
    )
