"""Benchmark of the idempotency store: latency of its operations, cleanup of 1M keys.

    python -m bench.idempotency_store [--keys 1000000] [--ops 5000]

Runs on a scratch database of its own (created, migrated, dropped). Latencies are
shown next to a baseline measured in the same run: a bare `SELECT 1` round trip on
the same connection, so the figures read as "n times a round trip".
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from bench.common import scratch_database
from config import Settings
from repositories import idempotency_keys
from users import idempotent_requests as idempotency

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def _latencies(operation: Callable[[int], object], count: int) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        operation(n)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _summary(name: str, samples: list[float], baseline_p99: float) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"{name:<28} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  max {ordered[-1]:7.3f} ms"
        f"  (p99 = {p99 / baseline_p99:4.1f}x SELECT 1)"
    )


def _operation_latencies(conn: psycopg.Connection, ops: int) -> None:
    keys = [str(uuid.uuid4()) for _ in range(ops)]
    baseline = _latencies(lambda n: conn.execute("SELECT 1").fetchone(), ops)
    base_p99 = sorted(baseline)[int(ops * 0.99) - 1]
    claims: list[datetime | None] = []

    def claim(n: int) -> None:
        claims.append(idempotency_keys.claim(conn, "bench", keys[n], "fp", MINUTE, DAY))

    claimed = _latencies(claim, ops)
    completed = _latencies(
        lambda n: idempotency_keys.complete(conn, "bench", keys[n], claims[n], 201, {"n": n}),
        ops,
    )
    looked_up = _latencies(lambda n: idempotency_keys.find(conn, "bench", keys[n]), ops)
    lost = _latencies(
        lambda n: idempotency_keys.claim(conn, "bench", keys[n], "fp", MINUTE, DAY), ops
    )
    print(_summary("SELECT 1 (baseline)", baseline, base_p99))
    print(_summary("claim (new key)", claimed, base_p99))
    print(_summary("complete", completed, base_p99))
    print(_summary("find", looked_up, base_p99))
    print(_summary("claim (completed key)", lost, base_p99))


def _fill_expired(conn: psycopg.Connection, count: int) -> float:
    started = time.perf_counter()
    conn.execute(
        "INSERT INTO idempotency_keys (scope, key, request_fingerprint, response_status,"
        " response_body, created_at)"
        " SELECT 'bench-old', 'old-' || n, 'fp', 201, '{}'::jsonb,"
        "        now() - interval '3 days' + n * interval '1 millisecond'"
        " FROM generate_series(1, %s) AS n",
        (count,),
    )
    conn.execute("VACUUM ANALYZE idempotency_keys")
    return time.perf_counter() - started


def _cleanup(url: str) -> None:
    settings = Settings.from_env({}, database_url=url)
    pool = ConnectionPool(url, min_size=1, max_size=2, kwargs={"row_factory": dict_row})
    batch_times: list[float] = []
    original = idempotency_keys.delete_older_than

    def timed(conn, cutoff, batch_size):
        started = time.perf_counter()
        result = original(conn, cutoff, batch_size)
        batch_times.append((time.perf_counter() - started) * 1000)
        return result

    idempotency_keys.delete_older_than = timed
    try:
        started = time.perf_counter()
        deleted = idempotency.clean_up_expired(
            pool, datetime.now(UTC), settings.idempotency_key_retention
        )
        elapsed = time.perf_counter() - started
    finally:
        idempotency_keys.delete_older_than = original
        pool.close()
    print(
        f"cleanup: {deleted} keys in {elapsed:.1f} s, {len(batch_times)} batches of "
        f"{idempotency.CLEANUP_BATCH}; longest batch (the longest any row lock is held) "
        f"{max(batch_times):.1f} ms, median {statistics.median(batch_times):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--ops", type=int, default=5_000)
    args = parser.parse_args()
    with scratch_database() as url:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            print(f"filled {args.keys} expired keys in {_fill_expired(conn, args.keys):.1f} s")
            _operation_latencies(conn, args.ops)
        _cleanup(url)


if __name__ == "__main__":
    main()
