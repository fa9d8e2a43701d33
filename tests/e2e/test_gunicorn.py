"""The API under gunicorn with the deploy configuration, as README command 1 runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _start(db_url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "DB_POOL_TIMEOUT": "2",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _first_answer(url: str, timeout: float) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_gunicorn_serves_health_and_stops_on_sigterm(db_url):
    port = _free_port()
    server = _start(db_url, port)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/health/db")
            except OSError:
                time.sleep(0.2)
        assert status == 200
        assert b'"pending":0' in body
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0


def test_gunicorn_serves_503_while_the_database_is_unreachable():
    port = _free_port()
    server = _start(f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere", port)
    try:
        assert _first_answer(f"http://127.0.0.1:{port}/health/live", 20)[0] == 200
        status, body = _get(f"http://127.0.0.1:{port}/health/db")
        assert status == 503
        assert b"nowhere" in body
        status, body = _get(f"http://127.0.0.1:{port}/users")
        assert status == 503
        assert b'"code":503' in body.replace(b" ", b"")
        assert server.poll() is None  # the master did not give up
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert "waiting for the database 127.0.0.1:" in errors
