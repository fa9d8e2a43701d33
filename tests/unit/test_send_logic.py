"""What a provider answer means, and when to try again: pure functions, no services."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from channels.http_email import classify, retry_after_seconds
from domain.delivery_policy import (
    ChannelAnswer,
    Outcome,
    RetryPolicy,
    Verdict,
    before_call,
    deadline,
    postpone,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BASE = timedelta(seconds=30)
MAX = timedelta(hours=1)
POLICY = RetryPolicy(max_retries=5, base_delay=BASE, max_delay=MAX)
SAMPLES = 500


@pytest.fixture(autouse=True)
def _seeded_random():
    state = random.getstate()
    random.seed(20261126)
    yield
    random.setstate(state)


def samples(retries_so_far: int, retry_after: float | None = None) -> list[timedelta]:
    return [POLICY.backoff(retries_so_far, retry_after) for _ in range(SAMPLES)]


def answer(outcome: Outcome, retry_after: float | None = None) -> ChannelAnswer:
    code = {Outcome.DELIVERED: 200, Outcome.RETRY_LATER: 503, Outcome.REFUSED: 400}[outcome]
    return ChannelAnswer(outcome, retry_after=retry_after, code=code, detail="")


# classify


@pytest.mark.parametrize("code", [200, 201, 204])
def test_a_2xx_answer_means_sent(code):
    assert classify(code) is Outcome.DELIVERED


@pytest.mark.parametrize("code", [500, 502, 503, 429])
def test_a_5xx_or_429_answer_is_transient(code):
    assert classify(code) is Outcome.RETRY_LATER


@pytest.mark.parametrize("code", [400, 401, 404, 409, 422])
def test_any_other_4xx_answer_is_permanent(code):
    assert classify(code) is Outcome.REFUSED


# retry_after_seconds


def test_retry_after_in_seconds_is_read_as_seconds():
    assert retry_after_seconds("120", NOW) == 120.0


def test_retry_after_as_an_http_date_gives_the_seconds_until_then():
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)

    assert retry_after_seconds(header, NOW) == pytest.approx(30.0, abs=1.0)


@pytest.mark.parametrize("header", [None, "", "soon", "1.5", "-5", "Mon, 32 Nov 2026 10:00:00 GMT"])
def test_a_missing_or_unreadable_retry_after_is_none(header):
    assert retry_after_seconds(header, NOW) is None


def test_a_retry_after_date_in_the_past_means_now():
    header = format_datetime(NOW - timedelta(minutes=5), usegmt=True)

    assert retry_after_seconds(header, NOW) == 0.0


def test_a_retry_after_of_unicode_digits_float_cannot_read_is_none():
    assert retry_after_seconds("²", NOW) is None


@pytest.mark.parametrize(
    "header", ["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "1" + "0" * 400]
)
def test_a_retry_after_past_any_deadline_expires_the_greeting_instead_of_raising(header):
    # The provider's clock and ours differ: the decision is taken a little after the
    # header was read, and year 9999 plus those seconds is past what datetime holds.
    asked = retry_after_seconds(header, NOW)
    decided_at = NOW + timedelta(seconds=5)

    decision = POLICY.decide(
        answer(Outcome.RETRY_LATER, asked), 0, decided_at, deadline(NOW, None, timedelta(hours=48))
    )

    assert decision.verdict is Verdict.EXPIRE
    assert "after the deadline" in decision.reason


def test_a_retry_after_longer_than_a_datetime_can_reach_still_backs_off_in_range():
    delay = POLICY.backoff(0, retry_after_seconds("99999999999999999999", NOW))

    assert delay >= timedelta(days=365)
    assert NOW + delay > NOW  # representable: no OverflowError


# RetryPolicy.backoff


@pytest.mark.parametrize("retries_so_far", [0, 1, 2, 3, 4, 5, 6])
def test_backoff_stays_in_the_jitter_band_around_base_times_two_to_the_n(retries_so_far):
    centre = BASE * 2**retries_so_far

    delays = samples(retries_so_far)

    assert all(0.5 * centre <= delay < 1.5 * centre for delay in delays)
    assert min(delays) < 0.6 * centre  # the whole band is used, not one fixed value
    assert max(delays) > 1.4 * centre


def test_backoff_grows_exponentially_with_each_retry():
    means = [sum(samples(n), timedelta()) / SAMPLES for n in range(6)]

    ratios = [later / earlier for earlier, later in itertools.pairwise(means)]
    assert all(1.7 < ratio < 2.3 for ratio in ratios)


@pytest.mark.parametrize("retries_so_far", [7, 10, 20])
def test_backoff_is_capped_by_the_maximum_delay_with_its_jitter(retries_so_far):
    delays = samples(retries_so_far)

    assert all(0.5 * MAX <= delay < 1.5 * MAX for delay in delays)


def test_backoff_is_capped_even_after_very_many_retries():
    delays = samples(64)

    assert all(0.5 * MAX <= delay < 1.5 * MAX for delay in delays)


def test_backoff_is_never_shorter_than_retry_after():
    delays = samples(0, retry_after=7200.0)

    assert set(delays) == {timedelta(seconds=7200)}


def test_a_short_retry_after_does_not_shorten_the_backoff():
    delays = samples(2, retry_after=1.0)

    assert all(delay >= 0.5 * BASE * 4 for delay in delays)


# RetryPolicy.decide


def test_a_sent_answer_is_decided_sent():
    decision = POLICY.decide(answer(Outcome.DELIVERED), 0, NOW)

    assert (decision.verdict, decision.next_attempt_at) == (Verdict.SENT, None)


def test_a_permanent_answer_fails_at_once():
    decision = POLICY.decide(answer(Outcome.REFUSED), 0, NOW)

    assert (decision.verdict, decision.next_attempt_at) == (Verdict.FAIL, None)


@pytest.mark.parametrize("retries_so_far", [0, 2, 4])
def test_a_transient_answer_with_retries_left_is_retried_later(retries_so_far):
    centre = BASE * 2**retries_so_far

    decision = POLICY.decide(answer(Outcome.RETRY_LATER), retries_so_far, NOW)

    assert decision.verdict is Verdict.RETRY
    assert decision.counts_as_attempt is True
    assert NOW + 0.5 * centre <= decision.next_attempt_at < NOW + 1.5 * centre


def test_a_transient_answer_honours_the_providers_retry_after():
    decision = POLICY.decide(answer(Outcome.RETRY_LATER, retry_after=600.0), 0, NOW)

    assert decision.next_attempt_at == NOW + timedelta(seconds=600)


@pytest.mark.parametrize("retries_so_far", [5, 6])
def test_a_transient_answer_after_the_last_retry_fails(retries_so_far):
    decision = POLICY.decide(answer(Outcome.RETRY_LATER), retries_so_far, NOW)

    assert (decision.verdict, decision.next_attempt_at) == (Verdict.FAIL, None)


# deadlines: never an attempt after scheduled time (or an operator's retry) + MAX_LATENESS


def test_the_deadline_counts_from_the_scheduled_send_time():
    scheduled = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    assert deadline(scheduled, None, timedelta(hours=48)) == scheduled + timedelta(hours=48)


def test_an_operators_retry_starts_a_fresh_lateness_window():
    scheduled = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    assert deadline(scheduled, NOW, timedelta(hours=48)) == NOW + timedelta(hours=48)


def test_a_retry_after_beyond_the_deadline_expires_instead_of_waiting_a_week():
    week = 7 * 24 * 3600.0

    decision = POLICY.decide(answer(Outcome.RETRY_LATER, retry_after=week), 0, NOW, NOW + MAX)

    assert decision.verdict is Verdict.EXPIRE
    assert decision.next_attempt_at is None
    assert "deadline" in decision.reason


def test_a_retry_within_the_deadline_is_kept():
    decision = POLICY.decide(answer(Outcome.RETRY_LATER, retry_after=60.0), 0, NOW, NOW + MAX)

    assert decision.verdict is Verdict.RETRY
    assert decision.next_attempt_at == NOW + timedelta(seconds=60)


def test_a_postponement_uses_no_retry_and_waits_the_given_time():
    decision = postpone(NOW, timedelta(seconds=30), NOW + MAX, "provider circuit breaker open")

    assert decision.verdict is Verdict.RETRY
    assert decision.counts_as_attempt is False
    assert decision.next_attempt_at == NOW + timedelta(seconds=30)
    assert decision.reason == "provider circuit breaker open"


def test_a_postponement_never_waits_past_the_deadline():
    decision = postpone(NOW, timedelta(hours=2), NOW + timedelta(minutes=5), "breaker open")

    assert decision.next_attempt_at == NOW + timedelta(minutes=5)


def test_a_postponement_at_or_after_the_deadline_expires():
    decision = postpone(NOW, timedelta(seconds=30), NOW, "breaker open")

    assert decision.verdict is Verdict.EXPIRE


# before_call


CALL = timedelta(seconds=12)  # connect + read
WAIT = timedelta(seconds=15)


def test_a_call_in_time_and_inside_the_lease_may_start():
    assert before_call(NOW, NOW + MAX, NOW + timedelta(minutes=2), CALL, WAIT) is None


def test_a_call_that_would_start_at_or_after_the_deadline_expires_the_greeting():
    decision = before_call(NOW, NOW, NOW + timedelta(minutes=2), CALL, WAIT)

    assert decision.verdict is Verdict.EXPIRE
    assert "deadline" in decision.reason


def test_a_call_that_could_outlast_the_lease_is_postponed_without_using_a_retry():
    # Recovery queues the greeting again when the lease ends: the call must not overlap it.
    decision = before_call(NOW, NOW + MAX, NOW + CALL - timedelta(seconds=1), CALL, WAIT)

    assert decision.verdict is Verdict.RETRY
    assert decision.counts_as_attempt is False
    assert decision.next_attempt_at == NOW + WAIT
    assert "lease" in decision.reason
