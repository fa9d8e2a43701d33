"""Fixtures of the end-to-end tests that run the send actor in this process."""

from __future__ import annotations

import os

import pytest
import redis

from config import Settings
from tasks import runtime
from tasks.runtime import WorkerResources

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def store():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def worker(db_url, provider, store, monkeypatch):
    """The worker's resources for one thread, installed as this process's own; call it
    with environment overrides."""
    monkeypatch.setattr(runtime, "_current", None)

    def build(**environ: str) -> WorkerResources:
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "REDIS_URL": REDIS_URL,
                **provider.channel_settings(),
                "DELIVERY_WINDOW": "off",  # its own tests set it
                # Links signed as the API of this test run checks them (tests/conftest.py)
                "PUBLIC_BASE_URL": os.environ["PUBLIC_BASE_URL"],
                "UNSUBSCRIBE_SECRET": os.environ["UNSUBSCRIBE_SECRET"],
                **environ,
            }
        )
        resources = WorkerResources.build(settings, threads=1)
        resources.pool.open(wait=True, timeout=10)
        runtime.install(resources)
        return resources

    provider.reset()
    yield build
    if runtime._current is not None:
        runtime._current.close()
