"""The worker's group commit: many threads' steps in few calls, each answered in order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.batching import Batcher, BatchTimeout


def until(condition, timeout: float = 5.0) -> None:
    """Wait (bounded) for `condition` to hold."""
    done = threading.Event()
    for _ in range(int(timeout / 0.001)):
        if condition():
            return
        done.wait(0.001)
    raise AssertionError("condition not reached in time")


def test_a_lone_step_runs_at_once_in_a_batch_of_its_own():
    calls: list[list[int]] = []

    def double(items):
        calls.append(list(items))
        return [i * 2 for i in items]

    batcher = Batcher("double", double, max_batch=8)

    assert batcher.submit(21, timeout=5) == 42
    assert calls == [[21]]


def test_steps_waiting_while_a_batch_runs_go_together_in_the_next_and_get_their_own_results():
    release = threading.Event()
    calls: list[list[int]] = []

    def work(items):
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(5)  # hold the first batch until the others wait
        return [i * 10 for i in items]

    batcher = Batcher("tens", work, max_batch=8)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.submit, 0, 5)
        until(lambda: calls)
        rest = [pool.submit(batcher.submit, n, 5) for n in range(1, 6)]
        until(lambda: batcher._steps.qsize() == 5)
        release.set()
        results = [first.result(5), *(f.result(5) for f in rest)]

    assert results == [0, 10, 20, 30, 40, 50]
    assert calls[0] == [0]
    assert sorted(calls[1]) == [1, 2, 3, 4, 5]


def test_a_batch_never_exceeds_its_size():
    calls: list[int] = []
    gate = threading.Event()

    def work(items):
        calls.append(len(items))
        gate.wait(5)
        return list(items)

    batcher = Batcher("small", work, max_batch=2)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(batcher.submit, n, 5) for n in range(5)]
        until(lambda: batcher._steps.qsize() + sum(calls) == 5)
        gate.set()
        assert sorted(f.result(5) for f in futures) == [0, 1, 2, 3, 4]
    assert max(calls) <= 2 and sum(calls) == 5


def test_every_step_of_a_failing_batch_gets_its_error_and_the_next_batch_still_runs():
    def work(items):
        if "bad" in items:
            raise RuntimeError("database away")
        return [item.upper() for item in items]

    batcher = Batcher("upper", work, max_batch=4)

    with pytest.raises(RuntimeError, match="database away"):
        batcher.submit("bad", timeout=5)
    assert batcher.submit("good", timeout=5) == "GOOD"


def test_a_batch_that_does_not_finish_in_time_raises_instead_of_waiting_forever():
    gate = threading.Event()
    batcher = Batcher("stuck", lambda items: gate.wait(5) and list(items), max_batch=1)

    with pytest.raises(BatchTimeout):
        batcher.submit("x", timeout=0.05)
    gate.set()


def test_work_answering_for_the_wrong_number_of_items_fails_the_batch():
    batcher = Batcher("short", lambda items: [], max_batch=4)

    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        batcher.submit("x", timeout=5)


class HeldWork:
    """A batcher's work that records each batch's items, each held until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, items):
        self.calls.append(list(items))
        self.release.wait(5)
        return list(items)


def loaded(name: str, max_batch: int, linger: float, pool) -> tuple[Batcher, HeldWork]:
    """A batcher under load: a batch of one held until two more steps wait, which then
    ran together."""
    work = HeldWork()
    batcher = Batcher(name, work, max_batch=max_batch, linger=linger)
    first = pool.submit(batcher.submit, 0, 5)
    until(lambda: work.calls)
    second = [pool.submit(batcher.submit, n, 5) for n in (1, 2)]
    until(lambda: batcher._steps.qsize() == 2)
    work.release.set()
    assert [first.result(5), *(f.result(5) for f in second)] == [0, 1, 2]
    assert work.calls[0] == [0] and sorted(work.calls[1]) == [1, 2]
    return batcher, work


def test_under_load_a_batch_waits_its_linger_for_steps_that_arrive_after_it_began():
    with ThreadPoolExecutor(4) as pool:
        batcher, work = loaded("lingering", max_batch=3, linger=30, pool=pool)
        later = [pool.submit(batcher.submit, 3, 5)]
        until(lambda: batcher._steps.qsize() == 0)  # taken: the batch has begun
        for n in (4, 5):
            later.append(pool.submit(batcher.submit, n, 5))
            until(lambda: batcher._steps.qsize() == 0)
        assert [f.result(5) for f in later] == [3, 4, 5]

    assert len(work.calls) == 3 and sorted(work.calls[2]) == [3, 4, 5]  # full: no 30 s wait


def test_a_quiet_batcher_runs_a_lone_step_at_once_whatever_its_linger():
    batcher = Batcher("quiet", lambda items: [i * 2 for i in items], max_batch=8, linger=60)

    assert batcher.submit(21, timeout=5) == 42
    assert batcher.submit(4, timeout=5) == 8


def test_a_batch_that_does_not_fill_runs_when_its_linger_ends():
    with ThreadPoolExecutor(4) as pool:
        batcher, work = loaded("short-linger", max_batch=8, linger=0.05, pool=pool)
        assert batcher.submit(3, timeout=5) == 3

    assert work.calls[2] == [3]


def test_a_negative_linger_is_refused():
    with pytest.raises(ValueError, match="linger"):
        Batcher("negative", lambda items: list(items), max_batch=2, linger=-1)
