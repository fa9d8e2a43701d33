"""The web process's composition root: the application factory builds its settings,
pool and the rest of `WebResources` once, then the blueprints and CLI that use them."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

import api
from api import auth, docs, resources
from api.errors import JsonErrorApi
from commands import database as db_commands
from commands import users as user_commands
from config import Settings
from db.pool import create_pool
from log_setup import configure_logging
from operations import time_zones
from operations.state_metrics import ServiceStateCollector
from operations.status_page import SummaryCache
from schema.migrations import discover

log = logging.getLogger(__name__)

API_DESCRIPTION = (
    "Stores people with their time zone, birthday and anniversary, and sends each "
    "of them a greeting at 09:00 in their own time zone."
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; `config` overrides environment settings and Flask config."""
    config = dict(config or {})
    setting_names = {f.name for f in fields(Settings)}
    overrides = {
        key.lower(): config.pop(key) for key in list(config) if key.lower() in setting_names
    }
    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config.update(
        API_TITLE="Birthday Message Scheduler",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}},
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=docs.ASSETS_URL,
        # No call to the public validator: the page must work with no internet.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None, "persistAuthorization": True},
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
    )
    app.config.update(config)
    resources.install(app, build_web_resources(settings))
    atexit.register(resources.resources_of(app).pool.close)

    api.register(app, JsonErrorApi(app, spec_kwargs={"extra_plugins": [auth.SecurityDocPlugin()]}))
    web = resources.resources_of(app)
    db_commands.init_app(app, db_commands.CommandResources(web.settings, web.pool, web.migrations))
    user_commands.init_app(app, user_commands.UserCommandResources(web.settings, web.pool))
    return app


def build_web_resources(settings: Settings) -> resources.WebResources:
    """What one web process holds: its pool (not opened yet), the migration files, the
    scrape-time state collector and the status page's cache."""
    pool = create_pool(settings, application_name="birthday-api")
    return resources.WebResources(
        settings=settings,
        pool=pool,
        migrations=discover(Path(settings.migrations_dir)),
        state_collector=ServiceStateCollector(pool, settings),
        status_summary=SummaryCache(),
    )


def check_zone_agreement(app: Flask) -> list[str]:
    """At start: warn about zones users have that the database computes unlike zoneinfo.

    Never fails the boot; returns the zones that differ (empty when the check could
    not run).
    """
    web = resources.resources_of(app)
    return time_zones.check_agreement(web.pool, datetime.now(UTC), web.settings.send_time)
