"""The readiness runner: every check at once, each bounded, one overall status."""

import threading

from operations import health


def test_the_checks_run_at_once():
    # Given three checks that each answer only once all three are running
    together = threading.Barrier(3)

    def waits_for_the_others():
        try:
            together.wait(timeout=5)
        except threading.BrokenBarrierError:
            return {"status": "ran alone"}
        return {"status": "ok"}

    # When they run
    checks = dict.fromkeys("abc", waits_for_the_others)
    reports = health.run_checks(checks, deadline=10)
    # Then each answered: none had to wait for another to finish first
    assert reports == {name: {"status": "ok"} for name in "abc"}


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
