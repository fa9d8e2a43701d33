"""What the web process is built from, and the one way its modules reach it.

app.py (the web process's composition root) builds a `WebResources` once per app
and installs it; blueprints, guards and error handlers ask `current()` (or
`resources_of(app)` where an app is at hand) instead of looking names up in
`app.extensions`. The database layer below knows nothing of Flask.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from psycopg_pool import ConnectionPool

from config import Settings
from operations.state_metrics import ServiceStateCollector
from operations.status_page import SummaryCache
from schema.migrations import Migration

_EXTENSION = "birthday_message_scheduler"


@dataclass(frozen=True)
class WebResources:
    settings: Settings
    pool: ConnectionPool  # opened lazily by current_pool(), or by gunicorn's post_worker_init
    migrations: list[Migration]  # the migration files, read once at start
    state_collector: ServiceStateCollector  # /metrics' gauges of the service's state
    status_summary: SummaryCache  # the status page's overview, per process


def install(app: Flask, resources: WebResources) -> None:
    app.extensions[_EXTENSION] = resources


def resources_of(app: Flask) -> WebResources:
    return app.extensions[_EXTENSION]


def current() -> WebResources:
    """The resources of the app handling this request (or CLI command)."""
    return resources_of(current_app)


def current_settings() -> Settings:
    return current().settings


def current_pool() -> ConnectionPool:
    """The current app's pool, opened if this is its first use (open is idempotent)."""
    pool = current().pool
    pool.open()
    return pool
