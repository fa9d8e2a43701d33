"""The Swagger UI page's JavaScript and CSS, served by the app itself (works offline)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from flask import Blueprint, send_from_directory
from flask.typing import ResponseReturnValue

ASSETS_DIR = Path(swagger_ui.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets/"

blp = Blueprint("docs_assets", __name__)


@blp.get(f"{ASSETS_URL}<path:filename>")
def asset(filename: str) -> ResponseReturnValue:
    """One file of the Swagger UI distribution shipped in the swagger-ui-py package."""
    return send_from_directory(ASSETS_DIR, filename, max_age=86400)
