"""The readiness runner: every check at once, each bounded, one overall status."""

import threading
import time

from services import health


def test_the_checks_run_at_once_so_the_answer_takes_the_slowest_not_the_sum():
    # Given three checks that each take 0.3 s
    def slow_ok():
        time.sleep(0.3)
        return {"status": "ok"}

    started = time.monotonic()
    # When they run together
    reports = health.run_checks({"a": slow_ok, "b": slow_ok, "c": slow_ok}, deadline=5)
    # Then each reports, and together they took far less than 0.9 s
    assert reports == {name: {"status": "ok"} for name in "abc"}
    assert time.monotonic() - started < 0.8


def test_a_check_that_does_not_answer_by_the_deadline_is_unavailable():
    # Given a check that hangs until released, beside one that answers
    release = threading.Event()

    def hangs():
        release.wait(10)
        return {"status": "ok"}

    try:
        # When the runner waits at most 0.2 s
        reports = health.run_checks({"hangs": hangs, "quick": lambda: {"status": "ok"}}, 0.2)
    finally:
        release.set()
    # Then the hanging one is reported as not answering, the other as it answered
    assert reports["hangs"] == {"status": "unavailable", "reason": "no answer in time"}
    assert reports["quick"] == {"status": "ok"}


def test_the_overall_status_is_the_worst_of_the_checks():
    ok, degraded = {"status": "ok"}, {"status": "degraded"}
    assert health.overall_status({"a": ok, "b": ok}) == "ok"
    assert health.overall_status({"a": ok, "b": degraded}) == "degraded"
    assert health.overall_status({"a": degraded, "b": {"status": "unknown"}}) == "unavailable"
    assert health.overall_status({"a": ok, "b": {"status": "unavailable"}}) == "unavailable"
