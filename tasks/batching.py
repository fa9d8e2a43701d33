"""Many threads' small database steps run as one: a group commit for the worker.

A worker process runs one send per thread. Each send takes its row and records its
answer, and done one by one every step is a transaction of its own: a round trip per
statement and a WAL flush per commit, for one row. A `Batcher` collects the steps
the threads hand it and runs as many as are waiting in one call of its `work` (one
statement over all their rows, one commit): the first step that arrives while the
batcher is idle runs at once, alone, so a quiet worker adds no delay; under load the
steps that arrived while a batch ran go together in the next one. With a `linger`,
a batcher under load (its last batch held more than one step) waits up to that long
for more steps before it runs a batch that is not full: a few milliseconds of a send
buy several rows per statement and per commit, where the database's cost is per
statement more than per row.

A thread waits for its own step's result, so nothing is acknowledged before its
commit; when `work` raises, every step of that batch raises the same error (each
message is then retried as if its own transaction had failed).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchTimeout(TimeoutError):
    """A step's batch did not finish in time (its rows may still be written later)."""


@dataclass(eq=False)
class _Step(Generic[Item, Result]):
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None
    error: BaseException | None = None


class Batcher(Generic[Item, Result]):
    """Runs `work(items) -> results` (one result per item, in order) for items
    submitted by many threads, up to `max_batch` items per call, on one thread."""

    def __init__(
        self,
        name: str,
        work: Callable[[Sequence[Item]], Sequence[Result]],
        max_batch: int,
        linger: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger < 0:
            raise ValueError("linger must be at least 0")
        self.name = name
        self._work = work
        self._max_batch = max_batch
        self._linger = linger  # seconds
        self._under_load = False  # the last batch held more than one step
        self._steps: queue.SimpleQueue[_Step[Item, Result]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, item: Item, timeout: float) -> Result:
        """Run `item` in the next batch and return its result (or raise its batch's error)."""
        step: _Step[Item, Result] = _Step(item)
        self._steps.put(step)
        self._ensure_running()
        if not step.done.wait(timeout):
            raise BatchTimeout(f"{self.name}: batch did not finish within {timeout} s")
        if step.error is not None:
            raise step.error
        return step.result  # type: ignore[return-value]

    def _ensure_running(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return  # the usual case: no lock taken
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run_forever, name=f"batcher-{self.name}", daemon=True
                )
                self._thread.start()

    def _run_forever(self) -> None:
        while True:
            self._run_batch(self._next_batch())

    def _next_batch(self) -> list[_Step[Item, Result]]:
        """The oldest waiting step (blocking for one) and whatever else already waits,
        or arrives within the linger when the batcher is under load."""
        batch = [self._steps.get()]
        deadline = time.monotonic() + (self._linger if self._under_load else 0.0)
        while len(batch) < self._max_batch:
            try:
                batch.append(self._steps.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        self._under_load = len(batch) > 1
        return batch

    def _run_batch(self, batch: list[_Step[Item, Result]]) -> None:
        try:
            results = self._work([step.item for step in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
            for step, result in zip(batch, results, strict=True):
                step.result = result
        except BaseException as error:  # handed to every waiting thread, never lost here
            log.warning("%s: batch of %d failed", self.name, len(batch), exc_info=True)
            for step in batch:
                step.error = error
        finally:
            for step in batch:
                step.done.set()
