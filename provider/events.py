"""The local provider's webhook events: what happened to each message, POSTed signed.

A real provider tells the sender what became of its messages (delivered, bounced,
complained about) by signed webhooks; this module does the same for the local provider.

- An event is a JSON object: {"id": "evt_<hex>", "type": "bounce" | "complaint" |
  "delivered", "bounce_type": "hard" | "soft" (bounces only), "email", "idempotency_key"
  (when known), "at": ISO 8601 with offset}. One webhook request carries one event (a
  JSON object body) or several (a JSON array body).
- Each request has the headers Webhook-Timestamp (unix seconds) and Webhook-Signature:
  `v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`, one per secret, space-separated.
- `EventSender` posts from one background daemon thread fed by a queue, so a send is never
  held up by a webhook: each POST times out after 5 s, a failure (no connection, an answer
  other than 2xx) is retried after 0.2 s, 0.5 s and 1 s, then dropped with a log line.
  Every request is kept in memory with its events, attempts and outcome.

Configured from the environment: WEBHOOK_URL (unset or empty: no events are sent) and
WEBHOOK_SECRET (comma-separated secrets; unset or blank: DEFAULT_SECRET, the one the
service also uses when it has no API tokens).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

# A well-known local default, not a credential: the service accepts it only without tokens.
DEFAULT_SECRET = "birthday-local-webhook-secret"  # noqa: S105
EVENT_TYPES = ("bounce", "complaint", "delivered")
BOUNCE_TYPES = ("hard", "soft")
EVENT_FIELDS = ("id", "type", "bounce_type", "email", "idempotency_key", "at")
POST_TIMEOUT_SECONDS = 5.0
# The waits before the 2nd, 3rd and 4th attempt of a request; after the 4th, it is dropped.
RETRY_DELAYS = (0.2, 0.5, 1.0)
PENDING, SENT, DROPPED = "pending", "sent", "dropped"

log = logging.getLogger(__name__)


def sign(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The Webhook-Signature value for `body` sent at `timestamp`: `v1=<hex>` per secret,
    in the order given, separated by single spaces."""
    signed = str(timestamp).encode() + b"." + body
    return " ".join(
        "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets
    )


def new_event_id() -> str:
    """A fresh, unique event id: `evt_` and a uuid4 in hex."""
    return "evt_" + uuid.uuid4().hex


def now_iso() -> str:
    """The current instant, ISO 8601 in UTC with its +00:00 offset."""
    return datetime.now(UTC).isoformat()


def delivered_event(delivery: dict) -> dict:
    """The `delivered` event reporting one delivery the provider recorded."""
    return make_event(
        "delivered",
        email=delivery["email"],
        idempotency_key=delivery.get("idempotency_key"),
        at=delivery["delivered_at"],
    )


def make_event(
    event_type: str,
    email: str,
    bounce_type: str | None = None,
    idempotency_key: str | None = None,
    at: str | None = None,
    event_id: str | None = None,
) -> dict:
    """An event in the contract's shape and key order; a missing id or `at` is filled in,
    and bounce_type and idempotency_key are left out when they do not apply or are
    unknown."""
    event: dict[str, Any] = {"id": event_id or new_event_id(), "type": event_type}
    if bounce_type is not None:
        event["bounce_type"] = bounce_type
    event["email"] = email
    if idempotency_key is not None:
        event["idempotency_key"] = idempotency_key
    event["at"] = at or now_iso()
    return event


def encode_event(event: dict) -> bytes:
    """The bytes one event is sent as, alone or inside an array."""
    return json.dumps(event, separators=(",", ":")).encode()


def secrets_from(value: str | None) -> list[str]:
    """The secrets a WEBHOOK_SECRET value lists (comma-separated, blanks ignored);
    [DEFAULT_SECRET] when it lists none."""
    secrets = [part.strip() for part in (value or "").split(",") if part.strip()]
    return secrets or [DEFAULT_SECRET]


class InvalidEvent(ValueError):
    """A POST /events body the provider refuses: the field at fault (`events[1].email` inside
    a batch) and what is wrong with it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class EventOrder:
    """What a POST /events body asks for: `events` to send in one request (a JSON array
    body when `batch`), or the `replay` of an event sent before."""

    events: list[dict] = field(default_factory=list)
    batch: bool = False
    replay: str | None = None


def read_order(body: object) -> EventOrder:
    """The order a POST /events body gives: one event (an object), `{"events": [...]}`, or
    `{"replay": "<event id>"}`; raises InvalidEvent naming the field at fault."""
    if not isinstance(body, dict):
        raise InvalidEvent("body", "send a JSON object")
    if "replay" in body:
        _only(body, "replay", "")
        return EventOrder(replay=_text(body, "replay", "", required=True))
    if "events" in body:
        _only(body, "events", "")
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise InvalidEvent("events", "'events' must be a non-empty list of events")
        return EventOrder([read_event(item, f"events[{i}].") for i, item in enumerate(items)], True)
    return EventOrder([read_event(body)])


def read_event(raw: object, where: str = "") -> dict:
    """The event a POST /events object describes, its id and `at` filled in when missing;
    raises InvalidEvent naming the field (prefixed with `where`) at fault."""
    if not isinstance(raw, dict):
        raise InvalidEvent(where.rstrip(".") or "body", "an event must be a JSON object")
    unknown = sorted(set(raw) - set(EVENT_FIELDS))
    if unknown:
        raise InvalidEvent(where + unknown[0], f"unknown fields: {', '.join(unknown)}")
    event_type = raw.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(where + "type", f"'type' must be one of {', '.join(EVENT_TYPES)}")
    return make_event(
        event_type,
        email=_text(raw, "email", where, required=True),
        bounce_type=_bounce_type(raw, event_type, where),
        idempotency_key=_text(raw, "idempotency_key", where),
        at=_instant(raw, where),
        event_id=_text(raw, "id", where),
    )


def _only(body: dict, name: str, where: str) -> None:
    """Refuse `body` if it holds anything besides `name`."""
    others = sorted(set(body) - {name})
    if others:
        raise InvalidEvent(where + others[0], f"'{name}' comes alone; unexpected: {others}")


def _text(raw: dict, name: str, where: str, required: bool = False) -> str | None:
    """Field `name` of `raw`: a non-empty string, or None when absent and not `required`."""
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(where + name, f"'{name}' must be a non-empty string")
    return value


def _bounce_type(raw: dict, event_type: str, where: str) -> str | None:
    """A bounce's bounce_type (required, hard or soft); None for other types, which must not
    carry one."""
    value = raw.get("bounce_type")
    if event_type != "bounce":
        if value is not None:
            raise InvalidEvent(where + "bounce_type", "'bounce_type' is for bounces only")
        return None
    if value not in BOUNCE_TYPES:
        raise InvalidEvent(where + "bounce_type", "a bounce needs 'bounce_type': hard or soft")
    return value


def _instant(raw: dict, where: str) -> str | None:
    """The event's `at` as given (ISO 8601 with an offset), or None when absent."""
    value = _text(raw, "at", where)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidEvent(where + "at", "'at' must be ISO 8601 with an offset")
    return value


@dataclass
class Attempt:
    """One POST of a webhook request: when, and the status answered or the error."""

    at: str
    status: int | None = None
    error: str | None = None


@dataclass
class Outgoing:
    """One webhook request: its events, the exact body they are sent as (an object for
    one event, an array for a batch), whether it replays an earlier event, its attempts
    and its outcome (PENDING, SENT or DROPPED)."""

    events: list[dict]
    body: bytes
    batch: bool
    replay_of: str | None = None
    generation: int = 0
    queued_at: str = field(default_factory=now_iso)
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = PENDING

    def report(self) -> dict:
        """What GET /events shows of this request."""
        last = self.attempts[-1] if self.attempts else Attempt(at="")
        return {
            "events": self.events,
            "batch": self.batch,
            "replay_of": self.replay_of,
            "queued_at": self.queued_at,
            "outcome": self.outcome,
            "attempts": len(self.attempts),
            "status": last.status,
            "error": last.error,
            "tries": [vars(attempt) for attempt in self.attempts],
        }


class EventSender:
    """Sends the provider's events to one webhook URL from a background thread, and keeps
    a log of every request with its outcome. With no URL it is disabled: nothing is sent
    or queued."""

    def __init__(
        self,
        url: str | None,
        secrets: list[str],
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = POST_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url or None
        self.secrets = list(secrets)
        self.retry_delays = retry_delays
        self.timeout = timeout
        self._queue: queue.Queue[Outgoing] = queue.Queue()
        self._lock = threading.Lock()
        self._log: list[Outgoing] = []
        self._sent_bytes: dict[str, bytes] = {}
        self._generation = 0
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EventSender:
        """The sender WEBHOOK_URL and WEBHOOK_SECRET in `environ` describe."""
        return cls(
            environ.get("WEBHOOK_URL", "").strip(), secrets_from(environ.get("WEBHOOK_SECRET"))
        )

    @property
    def enabled(self) -> bool:
        """Whether there is a URL to send events to."""
        return self.url is not None

    def delivered(self, delivery: dict) -> None:
        """Report one new delivery with a `delivered` event (nothing when disabled)."""
        if self.enabled:
            self.send([delivered_event(delivery)])

    def send(self, events: list[dict], batch: bool = False) -> Outgoing:
        """Queue `events` as one request: a JSON object body for one event unless `batch`,
        else a JSON array body."""
        parts = [encode_event(event) for event in events]
        body = b"[" + b",".join(parts) + b"]" if batch else parts[0]
        with self._lock:
            for event, part in zip(events, parts, strict=True):
                self._sent_bytes[event["id"]] = part
        return self._queue_request(Outgoing(events=events, body=body, batch=batch))

    def replay(self, event_id: str) -> dict | None:
        """Queue the event `event_id` again, the same bytes as its first sending (its own
        object, even if it first went in a batch); the event, or None if none was sent
        with that id since the last clear."""
        with self._lock:
            body = self._sent_bytes.get(event_id)
        if body is None:
            return None
        event = json.loads(body)
        self._queue_request(Outgoing(events=[event], body=body, batch=False, replay_of=event_id))
        return event

    def requests_made(self) -> list[dict]:
        """Every request queued since the last clear, oldest first, as GET /events shows it."""
        with self._lock:
            return [outgoing.report() for outgoing in self._log]

    def clear(self) -> None:
        """Forget every request and event, and give up those still queued or retried."""
        with self._lock:
            self._generation += 1
            self._log.clear()
            self._sent_bytes.clear()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _queue_request(self, outgoing: Outgoing) -> Outgoing:
        """Log `outgoing` and hand it to the sending thread, started on first use."""
        with self._lock:
            outgoing.generation = self._generation
            self._log.append(outgoing)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="provider-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put(outgoing)
        return outgoing

    def _run(self) -> None:
        """The sending thread: deliver queued requests one after the other, forever."""
        session = requests.Session()
        while True:
            outgoing = self._queue.get()
            try:
                self._deliver(session, outgoing)
            except Exception:  # the thread must outlive any one request's surprise
                log.exception("webhook request for %s failed unexpectedly", _ids(outgoing))

    def _deliver(self, session: requests.Session, outgoing: Outgoing) -> None:
        """POST `outgoing` until it is answered 2xx or its retries are spent, unless a
        clear gives it up in between."""
        for delay in (0.0, *self.retry_delays):
            time.sleep(delay)
            if self._given_up(outgoing):
                return
            attempt = self._post(session, outgoing.body)
            with self._lock:
                outgoing.attempts.append(attempt)
                if attempt.error is None:
                    outgoing.outcome = SENT
                    return
        with self._lock:
            outgoing.outcome = DROPPED
        log.warning(
            "webhook request for %s dropped after %d attempts: %s",
            _ids(outgoing),
            len(outgoing.attempts),
            outgoing.attempts[-1].error or f"HTTP {outgoing.attempts[-1].status}",
        )

    def _given_up(self, outgoing: Outgoing) -> bool:
        """Whether a clear since `outgoing` was queued makes it no longer worth sending."""
        with self._lock:
            return outgoing.generation != self._generation

    def _post(self, session: requests.Session, body: bytes) -> Attempt:
        """One signed POST of `body`, freshly timestamped: the status, or the error."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": sign(self.secrets, timestamp, body),
        }
        attempt = Attempt(at=now_iso())
        try:
            answer = session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            attempt.error = f"{type(error).__name__}: {error}"
            return attempt
        attempt.status = answer.status_code
        if not 200 <= answer.status_code < 300:
            attempt.error = f"HTTP {answer.status_code}"
        return attempt


def _ids(outgoing: Outgoing) -> str:
    """The ids of a request's events, for a log line."""
    return ", ".join(event["id"] for event in outgoing.events)
