"""Secure by default: gunicorn will not expose the API beyond loopback without a token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.delivery_stack import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "secure-default-test-token-1"
AUTH_VARIABLES = (
    "API_TOKEN",
    "API_TOKENS",
    "API_READ_TOKENS",
    "METRICS_TOKENS",
    "API_TOKENS_FILE",
    "API_READ_TOKENS_FILE",
    "METRICS_TOKENS_FILE",
    "ALLOW_ANONYMOUS",
)

pytestmark = pytest.mark.timeout(90)


def _environment(db_url: str, tmp_path: Path, bind: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    return {
        **base,
        "DATABASE_URL": db_url,
        "BIND": bind,
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **extra,
    }


def _gunicorn(env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _stop(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGTERM)
    _, errors = server.communicate(timeout=30)
    return errors


def test_gunicorn_refuses_an_exposed_bind_without_a_token(db_url, tmp_path):
    port = free_port()
    server = _gunicorn(_environment(db_url, tmp_path, f"0.0.0.0:{port}"))
    try:
        _, errors = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()

    assert server.returncode != 0
    assert "API_TOKENS" in errors and "ALLOW_ANONYMOUS=1" in errors
    assert not _answers(f"http://127.0.0.1:{port}/health/live")  # never listened


def test_gunicorn_starts_exposed_with_allow_anonymous_and_warns(db_url, tmp_path):
    port = free_port()
    server = _gunicorn(_environment(db_url, tmp_path, f"0.0.0.0:{port}", ALLOW_ANONYMOUS="1"))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health/live"), 30, "gunicorn")
        users = requests.get(f"http://127.0.0.1:{port}/users", timeout=5)
    finally:
        errors = _stop(server)

    assert users.status_code == 200
    assert "ALLOW_ANONYMOUS=1" in errors and "anyone who can reach the port" in errors


def test_gunicorn_starts_exposed_with_a_token_and_requires_it(db_url, tmp_path):
    port = free_port()
    server = _gunicorn(_environment(db_url, tmp_path, f"0.0.0.0:{port}", API_TOKENS=TOKEN))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health/live"), 30, "gunicorn")
        url = f"http://127.0.0.1:{port}/users"
        anonymous = requests.get(url, timeout=5)
        with_token = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    finally:
        errors = _stop(server)

    assert (anonymous.status_code, with_token.status_code) == (401, 200)
    assert TOKEN not in errors  # neither the access log nor the app logs the token


def test_gunicorn_on_loopback_needs_no_token(db_url, tmp_path):
    port = free_port()
    server = _gunicorn(_environment(db_url, tmp_path, f"127.0.0.1:{port}"))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health/live"), 30, "gunicorn")
        users = requests.get(f"http://127.0.0.1:{port}/users", timeout=5)
    finally:
        errors = _stop(server)

    assert users.status_code == 200
    assert "served to anyone who can reach the API" in errors  # said once, at start


def test_a_token_removed_from_the_file_fails_after_a_reload_without_a_restart(db_url, tmp_path):
    old, new = "reload-old-token-0000001", "reload-new-token-0000002"
    secret = tmp_path / "api_tokens"
    secret.write_text(f"{old}\n{new}\n")
    port = free_port()
    env = _environment(db_url, tmp_path, f"0.0.0.0:{port}", API_TOKENS_FILE=str(secret))
    server = _gunicorn(env)
    url = f"http://127.0.0.1:{port}/users"

    def status(token: str) -> int:
        return requests.get(
            url, headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).status_code

    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health/live"), 30, "gunicorn")
        before = (status(old), status(new))
        secret.write_text(f"{new}\n")
        server.send_signal(signal.SIGHUP)  # what `systemctl reload birthday-api` sends
        wait_until(lambda: status(old) == 401, 30, "the new workers to drop the old token")
        after = (status(old), status(new))
        still_running = server.poll() is None
    finally:
        _stop(server)

    assert before == (200, 200)
    assert after == (401, 200)
    assert still_running
