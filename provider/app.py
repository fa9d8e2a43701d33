"""The local email provider: the provider contract, recorded, deduplicated, breakable.

    gunicorn -w 1 --threads 16 -b 127.0.0.1:8025 'provider.app:create_app()'
    gunicorn -w 1 --threads 16 -b 127.0.0.1:8025 'provider.app:create_app(smtp_port=1025)'

- POST /send-email {"email", "message", optional "subject", "html", "unsubscribe_url"} with header
  Idempotency-Key: 200 and one recorded delivery per key; a repeated key is answered 200
  and not delivered again.
- GET /deliveries: what was delivered; GET /requests: every request received (with its
  "outcome": failed, duplicate or sent; none when refused before any decision). Each
  carries its "channel": "http" or "smtp".
- POST /control {"fail_status", "fail_count", "delay_ms", "retry_after", "smtp_reply",
  "smtp_drop"}: answer the next fail_count sends with fail_status (e.g. 503, 429, 400),
  or be slow.
- POST /reset: forget everything, the event log too.
- Webhook events (provider/events.py), when WEBHOOK_URL is set: each new delivery (either
  channel; not a duplicate, not a failure) is reported by a signed `delivered` event
  {"id", "type", "email", "idempotency_key", "at"} POSTed to WEBHOOK_URL from a background
  thread, retried 3 times (0.2 s, 0.5 s, 1 s) on no connection or a non-2xx answer.
- POST /events {"type": "bounce"|"complaint"|"delivered", "email", "bounce_type" (bounces
  only: "hard"|"soft"), optional "idempotency_key", "id", "at"}: report that event now;
  202 with the event (id and at filled in). {"events": [...]} sends several in one request
  (a JSON array body), 202 {"events": [...]}; {"replay": "<event id>"} sends an event sent
  before again, the same bytes with a fresh timestamp and signature, 202 with the event
  (404 if none was sent with that id since the last reset). A bad body is 422
  {"code", "message", "field"}; without WEBHOOK_URL, 409.
- GET /events: every webhook request since the last reset, oldest first: {"events",
  "batch", "replay_of", "queued_at", "outcome": "pending"|"sent"|"dropped", "attempts",
  "status" (the last answer's HTTP status, or null), "error" (the last failure, or null),
  "tries": [{"at", "status", "error"}]}.
- With `smtp_port`, the same process also runs an SMTP server (provider/smtp.py, no AUTH,
  no TLS) on the same state: a message's key is read from its Message-ID
  (channels/message_ids.py), /control's failures and delay apply to it too (fail_status
  mapped to an SMTP reply, or smtp_reply / smtp_drop), and a repeated key is accepted
  and not delivered again.
State lives in this one process (run a single gunicorn worker): it stands in for a
remote system, it is not part of the service's own data.

Environment, read by create_app:
- WEBHOOK_URL: where to POST events (e.g. http://127.0.0.1:8000/webhooks/provider);
  unset or empty, no events are sent.
- WEBHOOK_SECRET: the secrets to sign with, comma-separated (several while one is
  rotated: one v1= signature each); unset or blank, `birthday-local-webhook-secret`, the
  service's own default without API tokens.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

from provider.events import EventSender, InvalidEvent, read_order

FAILED, DUPLICATE, SENT = "failed", "duplicate", "sent"


@dataclass
class Behaviour:
    """How the provider misbehaves, as POST /control set it.

    fail_status, fail_count, delay_ms and no_such_recipient apply to both channels;
    retry_after to HTTP only; smtp_reply (an exact reply line) and smtp_drop (close
    without answering) to SMTP only. no_such_recipient: a permanent failure (a 4xx other
    than 429) says the address has no mailbox, `{"error": "no_such_recipient"}` over HTTP
    and `550 5.1.1` over SMTP (else `{"error": "injected failure"}` and `554 5.7.1`).
    """

    fail_status: int = 503
    fail_count: int = 0
    delay_ms: int = 0
    retry_after: int | None = None
    smtp_reply: str | None = None
    smtp_drop: bool = False
    no_such_recipient: bool = False


@dataclass(frozen=True)
class Arrival:
    """The provider's decision on one send: FAILED, DUPLICATE or SENT (with its delivery),
    and the behaviour in force when it arrived."""

    outcome: str
    behaviour: Behaviour
    delivery: dict | None = None


@dataclass
class ProviderState:
    """Everything the provider remembers, shared by its HTTP and SMTP sides; `on_delivery`,
    if set, is told of each new delivery (outside the lock, before the send is answered)."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    deliveries: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_delivery: Callable[[dict], None] | None = None

    def record_refused(self, seen: dict) -> None:
        """Record a send refused before any decision (`seen`: channel, idempotency_key,
        email)."""
        with self.lock:
            self.requests.append({**seen, "received_at": _now()})

    def arrive(self, seen: dict, content: dict) -> Arrival:
        """Record one send (`seen`: channel, idempotency_key, email) and decide it: an
        injected failure while fail_count lasts, else a duplicate of a key seen before,
        else a delivery of `content` (its message and the channel's other fields), which
        on_delivery is told of."""
        arrival = self._decide(seen, content)
        if arrival.outcome == SENT and self.on_delivery is not None:
            self.on_delivery(dict(arrival.delivery))
        return arrival

    def _decide(self, seen: dict, content: dict) -> Arrival:
        """Record and decide one send, as `arrive` says, under the lock."""
        now = _now()
        with self.lock:
            request = {**seen, "received_at": now}
            self.requests.append(request)
            behaviour = replace(self.behaviour)
            if self.behaviour.fail_count > 0:
                self.behaviour.fail_count -= 1
                request["outcome"] = FAILED
                return Arrival(FAILED, behaviour)
            key = seen["idempotency_key"]
            if key in self.keys:
                request["outcome"] = DUPLICATE
                return Arrival(DUPLICATE, behaviour)
            # Recorded on arrival: a retry of a request still being answered is a duplicate.
            self.keys.add(key)
            request["outcome"] = SENT
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
        behaviour = arrival.behaviour
        permanent = 400 <= behaviour.fail_status < 500 and behaviour.fail_status != 429
        error = (
            "no_such_recipient" if permanent and behaviour.no_such_recipient else "injected failure"
        )
        return {"error": error}, behaviour.fail_status, headers
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


def _invalid(error: InvalidEvent):
    """The 422 answer to a POST /events body naming the field at fault."""
    return jsonify({"code": 422, "message": error.message, "field": error.field}), 422


def _start_events(app: Flask, state: ProviderState) -> EventSender:
    """The event sender the environment configures, told of every new delivery."""
    sender = EventSender.from_env(os.environ)
    state.on_delivery = sender.delivered
    app.extensions["provider_events"] = sender
    return sender


def create_app(smtp_port: int | None = None, smtp_host: str = "127.0.0.1") -> Flask:
    """The provider's Flask app with fresh, empty state; with `smtp_port`, also an SMTP
    server on `smtp_host`:`smtp_port` sharing that state; with WEBHOOK_URL in the
    environment, an event sender reporting to it (module docstring)."""
    app = Flask(__name__)
    state = ProviderState()
    app.extensions["provider_state"] = state
    sender = _start_events(app, state)
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
        sender.clear()
        return jsonify({"status": "reset"})

    @app.post("/events")
    def send_events() -> Any:
        try:
            order = read_order(request.get_json(silent=True))
        except InvalidEvent as error:
            return _invalid(error)
        if not sender.enabled:
            return _error(409, "WEBHOOK_URL is not set: this provider sends no events")
        if order.replay is not None:
            event = sender.replay(order.replay)
            if event is None:
                return _error(404, f"no event {order.replay} was sent since the last reset")
            return jsonify(event), 202
        sender.send(order.events, batch=order.batch)
        return jsonify({"events": order.events} if order.batch else order.events[0]), 202

    @app.get("/events")
    def events_sent() -> Any:
        return jsonify(sender.requests_made())

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    return app
