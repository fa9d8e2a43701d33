"""Baseline for the API benchmark: the least a Flask app on a psycopg pool can do.

    gunicorn -w 2 -k gthread --threads 4 -b 127.0.0.1:PORT 'bench.minimal_app:create_app()'

GET /users/<id> reads one row and POST /users inserts one, with no validation, no
auth, no schemas and no idempotency: what the project's endpoints cost on top of
this is the price of what they do. DATABASE_URL names the database.
"""

from __future__ import annotations

import os
import uuid

from flask import Flask, jsonify, request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

READ_USER = """
SELECT id, first_name, last_name, email, timezone, birthday_date, anniversary_date,
       location_city, location_country, created_at, updated_at
FROM users WHERE id = %s AND deleted_at IS NULL
"""

INSERT_USER = """
INSERT INTO users (first_name, last_name, email, timezone, birthday_date)
VALUES (%(first_name)s, %(last_name)s, %(email)s, %(timezone)s, %(birthday_date)s)
RETURNING id, first_name, last_name, email, timezone, birthday_date, created_at
"""


def create_app() -> Flask:
    app = Flask(__name__)
    pool = ConnectionPool(
        os.environ["DATABASE_URL"], min_size=2, max_size=4, kwargs={"row_factory": dict_row}
    )

    @app.get("/users/<uuid:user_id>")
    def read_user(user_id: uuid.UUID):
        with pool.connection() as conn:
            row = conn.execute(READ_USER, (user_id,)).fetchone()
        return (jsonify(row), 200) if row else ({"message": "not found"}, 404)

    @app.post("/users")
    def create_user():
        with pool.connection() as conn:
            row = conn.execute(INSERT_USER, request.get_json()).fetchone()
        return jsonify(row), 201

    return app
