"""The local email provider: the provider contract, recorded, deduplicated, breakable.

    gunicorn -w 1 --threads 16 -b 127.0.0.1:8025 'provider.app:create_app()'
    gunicorn -w 1 --threads 16 -b 127.0.0.1:8025 'provider.app:create_app(smtp_port=1025)'

- POST /send-email {"email", "message", optional "subject", "html", "unsubscribe_url"} with header
  Idempotency-Key: 200 and one recorded delivery per key; a repeated key is answered 200
  and not delivered again.
- GET /deliveries: what was delivered; GET /requests: every request received. Each
  carries its "channel": "http" or "smtp".
- POST /control {"fail_status", "fail_count", "delay_ms", "retry_after", "smtp_reply",
  "smtp_drop"}: answer the next fail_count sends with fail_status (e.g. 503, 429, 400),
  or be slow.
- POST /reset: forget everything.
- With `smtp_port`, the same process also runs an SMTP server (provider/smtp.py, no AUTH,
  no TLS) on the same state: a message's key is read from its Message-ID
  (channels/message_ids.py), /control's failures and delay apply to it too (fail_status
  mapped to an SMTP reply, or smtp_reply / smtp_drop), and a repeated key is accepted
  and not delivered again.
State lives in this one process (run a single gunicorn worker): it stands in for a
remote system, it is not part of the service's own data.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

FAILED, DUPLICATE, SENT = "failed", "duplicate", "sent"


@dataclass
class Behaviour:
    """How the provider misbehaves, as POST /control set it.

    fail_status, fail_count, delay_ms apply to both channels; retry_after to HTTP only;
    smtp_reply (an exact reply line) and smtp_drop (close without answering) to SMTP only.
    """

    fail_status: int = 503
    fail_count: int = 0
    delay_ms: int = 0
    retry_after: int | None = None
    smtp_reply: str | None = None
    smtp_drop: bool = False


@dataclass(frozen=True)
class Arrival:
    """The provider's decision on one send: FAILED, DUPLICATE or SENT (with its delivery),
    and the behaviour in force when it arrived."""

    outcome: str
    behaviour: Behaviour
    delivery: dict | None = None


@dataclass
class ProviderState:
    """Everything the provider remembers, shared by its HTTP and SMTP sides."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    deliveries: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_refused(self, seen: dict) -> None:
        """Record a send refused before any decision (`seen`: channel, idempotency_key,
        email)."""
        with self.lock:
            self.requests.append({**seen, "received_at": _now()})

    def arrive(self, seen: dict, content: dict) -> Arrival:
        """Record one send (`seen`: channel, idempotency_key, email) and decide it: an
        injected failure while fail_count lasts, else a duplicate of a key seen before,
        else a delivery of `content` (its message and the channel's other fields)."""
        now = _now()
        with self.lock:
            self.requests.append({**seen, "received_at": now})
            behaviour = replace(self.behaviour)
            if self.behaviour.fail_count > 0:
                self.behaviour.fail_count -= 1
                return Arrival(FAILED, behaviour)
            key = seen["idempotency_key"]
            if key in self.keys:
                return Arrival(DUPLICATE, behaviour)
            # Recorded on arrival: a retry of a request still being answered is a duplicate.
            self.keys.add(key)
            delivery = {"id": len(self.deliveries) + 1, **seen, **content, "delivered_at": now}
            self.deliveries.append(delivery)
            return Arrival(SENT, behaviour, delivery)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error(status: int, message: str):
    return jsonify({"code": status, "message": message}), status


def _send_fields(body: object) -> dict | str:
    """The delivery fields of a POST /send-email body, or what is wrong with it."""
    if not isinstance(body, dict) or not body.get("email") or not body.get("message"):
        return "send JSON with 'email' and 'message'"
    for name in ("subject", "html", "unsubscribe_url"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"'{name}' must be a string"
    return {
        "message": str(body["message"]),
        "subject": body.get("subject"),
        "html": body.get("html"),
        "unsubscribe_url": body.get("unsubscribe_url"),
    }


def _http_answer(arrival: Arrival, key: str) -> tuple[dict, int, dict]:
    """The HTTP answer to a decided send: (body, status, headers)."""
    if arrival.outcome == FAILED:
        retry_after = arrival.behaviour.retry_after
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return {"error": "injected failure"}, arrival.behaviour.fail_status, headers
    if arrival.outcome == DUPLICATE:
        return {"status": "duplicate", "idempotency_key": key}, 200, {}
    return {"status": "sent", "delivery_id": arrival.delivery["id"]}, 200, {}


def _start_smtp(app: Flask, state: ProviderState, host: str, port: int) -> None:
    """Run the SMTP side on `host`:`port` until the interpreter exits."""
    # Imported here: provider.smtp imports this module's names.
    from provider.smtp import start_server, stop_server

    controller = start_server(state, host, port)
    atexit.register(stop_server, controller)
    app.extensions["provider_smtp"] = controller


def create_app(smtp_port: int | None = None, smtp_host: str = "127.0.0.1") -> Flask:
    """The provider's Flask app with fresh, empty state; with `smtp_port`, also an SMTP
    server on `smtp_host`:`smtp_port` sharing that state."""
    app = Flask(__name__)
    state = ProviderState()
    app.extensions["provider_state"] = state
    if smtp_port is not None:
        _start_smtp(app, state, smtp_host, smtp_port)

    @app.post("/send-email")
    def send_email() -> Any:
        key = request.headers.get("Idempotency-Key", "")
        body = request.get_json(silent=True)
        if not key:
            return _error(400, "the Idempotency-Key header is required")
        fields = _send_fields(body)
        if isinstance(fields, str):
            return _error(400, fields)
        seen = {"channel": "http", "idempotency_key": key, "email": str(body["email"])}
        arrival = state.arrive(seen, fields)
        if arrival.behaviour.delay_ms:
            time.sleep(arrival.behaviour.delay_ms / 1000)
        answer, status, headers = _http_answer(arrival, key)
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
