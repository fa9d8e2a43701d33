"""PostgreSQL restarted under idle API workers: the first request each worker serves
afterwards answers as usual, not 503 after the pool timeout.

gunicorn hands a connection to whichever worker accepts it first, and no answer names
the worker. The test therefore opens TCP connections to the API, finds which worker
process holds the accepted end of each (its socket inode in /proc/net/tcp, among the
worker's file descriptors), keeps one per worker and sends each worker's first request
over it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.delivery_stack import Processes, environment, free_port, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

WORKERS = 2
# Connections each worker's pool holds while idle: what a worker keeps after serving
# GUNICORN_THREADS (4) requests at once. DB_POOL_MIN_SIZE holds it there for the test,
# where the pool would otherwise shrink back one connection per DB_POOL_MAX_IDLE. Each
# dead one cost the first checkout after a restart a longer sleep (0, 1, 2, 2 s): four
# made it time out.
IDLE_CONNECTIONS = 4
OUTAGE = 20.0  # seconds PostgreSQL stays down
POOL_TIMEOUT = 5.0  # DB_POOL_TIMEOUT's default: how long a request may wait for a connection
# A POST /users takes milliseconds, a fresh connection to a local server as much again;
# three dead connections cost the first one 3 s.
REQUEST_BOUND = 2.0
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"  # only connected to, by /health
ESTABLISHED = "01"  # the state column of /proc/net/tcp


def _tcp_connections() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, socket inode) of every IPv4 TCP socket here."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        columns = line.split()
        local, remote, state, inode = columns[1], columns[2], columns[3], int(columns[9])
        rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state, inode))
    return rows


def _socket_inodes_of(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    inodes = set()
    directory = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(directory):
        try:
            target = os.readlink(directory / fd)
        except OSError:  # closed meanwhile
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match[1]))
    return inodes


def _connections_to_port(pid: int, port: int) -> int:
    """How many established TCP connections process `pid` holds to `port`."""
    inodes = _socket_inodes_of(pid)
    return sum(
        1
        for _, remote, state, inode in _tcp_connections()
        if remote == port and state == ESTABLISHED and inode in inodes
    )


def _worker_holding(client_port: int, api_port: int, pids: list[int]) -> int | None:
    """The worker holding the API's end of the connection from `client_port`, once
    one has accepted it."""
    inodes = {
        inode
        for local, remote, _, inode in _tcp_connections()
        if local == api_port and remote == client_port and inode
    }
    for pid in pids:
        if inodes & _socket_inodes_of(pid):
            return pid
    return None


def _worker_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log.read_text())]


def _connection_to_each_worker(
    api_port: int, pids: list[int], attempts: int = 60
) -> dict[int, http.client.HTTPConnection]:
    """One open, unused HTTP connection accepted by each worker of `pids`."""
    held: dict[int, http.client.HTTPConnection] = {}
    for _ in range(attempts):
        connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
        connection.connect()
        client_port = connection.sock.getsockname()[1]
        pid = wait_until(
            lambda port=client_port: _worker_holding(port, api_port, pids),
            5,
            "a worker to accept the connection",
        )
        if pid in held:
            # Closed at once: an accepted connection ties up one of the worker's
            # threads until its first bytes (or its end) arrive.
            connection.close()
        else:
            held[pid] = connection
        if len(held) == len(pids):
            return held
    for connection in held.values():
        connection.close()
    raise AssertionError(f"{attempts} connections reached only the workers {sorted(held)}")


def _post_user(connection: http.client.HTTPConnection, email: str) -> tuple[int, dict, float]:
    """POST /users over `connection`: (status, body, seconds taken)."""
    user = {
        "first_name": "Ada",
        "last_name": "Restart",
        "email": email,
        "timezone": "UTC",
        "birthday_date": "1990-01-01",
    }
    started = time.monotonic()
    connection.request(
        "POST", "/users", body=json.dumps(user), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    return response.status, body, time.monotonic() - started


def test_first_request_to_each_idle_api_worker_after_a_postgres_restart_succeeds(
    private_postgres, tmp_path
):
    # Given the API under gunicorn with two workers, each pool holding idle connections
    env = environment(private_postgres.db_url, DEFAULT_BROKER, "http://127.0.0.1:9")
    processes = Processes(env, tmp_path)
    api_port = free_port()
    try:
        server = processes.api(
            api_port,
            WEB_CONCURRENCY=str(WORKERS),
            DB_POOL_MIN_SIZE=str(IDLE_CONNECTIONS),
            DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        )
        log = tmp_path / "api-0.log"
        pids = wait_until(
            lambda: len(found := _worker_pids(log)) == WORKERS and found, 30, "two workers"
        )
        wait_until(
            lambda: all(
                _connections_to_port(pid, private_postgres.port) >= IDLE_CONNECTIONS for pid in pids
            ),
            30,
            f"{IDLE_CONNECTIONS} pooled connections in each worker",
        )
        pooled = {pid: _connections_to_port(pid, private_postgres.port) for pid in pids}

        # When PostgreSQL restarts while the workers serve nothing
        private_postgres.stop("fast")
        time.sleep(OUTAGE)  # the outage itself, not a check
        private_postgres.start()

        # Then the first request each worker serves afterwards creates its user at once
        connections = _connection_to_each_worker(api_port, pids)
        with ThreadPoolExecutor(WORKERS) as executor:
            answers = dict(
                zip(
                    connections,
                    executor.map(
                        _post_user,
                        connections.values(),
                        [f"restart-{pid}@example.com" for pid in connections],
                    ),
                    strict=True,
                )
            )
        for connection in connections.values():
            connection.close()
        print(
            f"pooled connections per worker before the restart: {pooled}; first answers: "
            + ", ".join(
                f"worker {pid}: {status} in {took:.2f} s"
                for pid, (status, _, took) in answers.items()
            )
        )
        assert sorted(answers) == sorted(pids)
        for pid, (status, body, took) in answers.items():
            assert status == 201, f"worker {pid}: {status} after {took:.2f} s: {body}"
            assert took < REQUEST_BOUND, f"worker {pid} answered after {took:.2f} s"

        # And neither worker was replaced on the way
        assert server.poll() is None
        assert _worker_pids(log) == pids
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()
