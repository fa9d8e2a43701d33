"""The local email provider: the provider contract, recorded, deduplicated, breakable.

    gunicorn -w 1 --threads 16 -b 127.0.0.1:8025 'provider.app:create_app()'

- POST /send-email {"email", "message"} with header Idempotency-Key: 200 and one
  recorded delivery per key; a repeated key is answered 200 and not delivered again.
- GET /deliveries: what was delivered; GET /requests: every request received.
- POST /control {"fail_status", "fail_count", "delay_ms", "retry_after"}: answer the
  next fail_count sends with fail_status (e.g. 503, 429, 400), or be slow.
- POST /reset: forget everything.
State lives in this one process (run a single gunicorn worker): it stands in for a
remote system, it is not part of the service's own data.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request


@dataclass
class Behaviour:
    fail_status: int = 503
    fail_count: int = 0
    delay_ms: int = 0
    retry_after: int | None = None


@dataclass
class ProviderState:
    behaviour: Behaviour = field(default_factory=Behaviour)
    deliveries: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, key: str, email: str, message: str) -> tuple[int, dict, dict]:
        """Decide the answer to one send: (status, body, headers)."""
        now = datetime.now(UTC).isoformat()
        with self.lock:
            self.requests.append({"idempotency_key": key, "email": email, "received_at": now})
            if self.behaviour.fail_count > 0:
                self.behaviour.fail_count -= 1
                headers = {}
                if self.behaviour.retry_after is not None:
                    headers["Retry-After"] = str(self.behaviour.retry_after)
                return self.behaviour.fail_status, {"error": "injected failure"}, headers
            if key in self.keys:
                return 200, {"status": "duplicate", "idempotency_key": key}, {}
            # Recorded on arrival: a retry of a request still being answered is a duplicate.
            self.keys.add(key)
            delivery = {
                "id": len(self.deliveries) + 1,
                "idempotency_key": key,
                "email": email,
                "message": message,
                "delivered_at": now,
            }
            self.deliveries.append(delivery)
            return 200, {"status": "sent", "delivery_id": delivery["id"]}, {}


def _error(status: int, message: str):
    return jsonify({"code": status, "message": message}), status


def create_app() -> Flask:
    """The provider's Flask app with fresh, empty state."""
    app = Flask(__name__)
    state = ProviderState()
    app.extensions["provider_state"] = state

    @app.post("/send-email")
    def send_email() -> Any:
        key = request.headers.get("Idempotency-Key", "")
        body = request.get_json(silent=True)
        if not key:
            return _error(400, "the Idempotency-Key header is required")
        if not isinstance(body, dict) or not body.get("email") or not body.get("message"):
            return _error(400, "send JSON with 'email' and 'message'")
        status, answer, headers = state.receive(key, str(body["email"]), str(body["message"]))
        delay = state.behaviour.delay_ms / 1000
        if delay:
            time.sleep(delay)
        return jsonify(answer), status, headers

    @app.get("/deliveries")
    def deliveries() -> Any:
        with state.lock:
            return jsonify(list(state.deliveries))

    @app.get("/requests")
    def requests_seen() -> Any:
        with state.lock:
            return jsonify(list(state.requests))

    @app.post("/control")
    def control() -> Any:
        changes = request.get_json(silent=True) or {}
        allowed = set(Behaviour.__dataclass_fields__)
        unknown = set(changes) - allowed
        if unknown:
            return _error(422, f"unknown settings: {', '.join(sorted(unknown))}")
        with state.lock:
            for name, value in changes.items():
                setattr(state.behaviour, name, value)
            return jsonify(asdict(state.behaviour))

    @app.post("/reset")
    def reset() -> Any:
        with state.lock:
            state.behaviour = Behaviour()
            state.deliveries.clear()
            state.requests.clear()
            state.keys.clear()
        return jsonify({"status": "reset"})

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    return app
