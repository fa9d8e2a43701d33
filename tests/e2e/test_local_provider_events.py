"""The local provider's webhook events, on a real gunicorn process and a real receiver:
a new delivery (HTTP or SMTP) is reported by one signed `delivered` event, POST /events
reports bounces and complaints (alone, in a batch, or replayed byte for byte), a failed
POST is retried and logged in GET /events, and without WEBHOOK_URL nothing is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from channels.message_ids import message_id_for
from tests.delivery_stack import Provider, wait_until

SECRET = "provider-events-test-secret"
DEFAULT_SECRET = "birthday-local-webhook-secret"
KEY = "1b4e28ba-2fa1-11d2-883f-0016d3cca427:birthday:2024-05-17"
OTHER_KEY = "1b4e28ba-2fa1-11d2-883f-0016d3cca427:birthday:2025-05-17"
EVENT_ID = re.compile(r"^evt_[0-9a-f]{32}$")
WEBHOOK_PATH = "/webhooks/provider"


@dataclass(frozen=True)
class Received:
    """One request the receiver got: its path, headers (names in lower case) and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body, parsed."""
        return json.loads(self.body)


class Receiver:
    """A real HTTP server standing in for the service's webhook endpoint: it records every
    POST and answers the statuses planned for the next requests, then 200; with `hold`
    set, it keeps each answer back until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.planned: list[int] = []
        self.released = threading.Event()
        self.released.set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}{WEBHOOK_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, received: Received) -> int:
        """Keep `received` and pick the status to answer it with."""
        with self.lock:
            self.received.append(received)
            return self.planned.pop(0) if self.planned else 200

    def plan(self, *statuses: int) -> None:
        """Answer the next requests with `statuses`, in order."""
        with self.lock:
            self.planned.extend(statuses)

    def got(self) -> list[Received]:
        """Every request received so far."""
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """The requests received, once there are at least `count` of them."""
        wait_until(lambda: len(self.got()) >= count, timeout, f"{count} webhook requests")
        return self.got()

    def clear(self) -> None:
        """Forget what was received and planned; answer at once again."""
        self.released.set()
        with self.lock:
            self.received.clear()
            self.planned.clear()

    def close(self) -> None:
        """Stop serving and release any request still held."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    """A request handler class recording into `receiver`."""

    class Handler(BaseHTTPRequestHandler):
        """Records each POST in the receiver and answers its planned status."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver.record(Received(self.path, headers, body))
            receiver.released.wait(timeout=30)
            answer = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    return Handler


class EmittingProvider(Provider):
    """The local provider with its SMTP side, started with WEBHOOK_URL and WEBHOOK_SECRET
    as given (None: unset) and its output in `log`."""

    def __init__(self, log: Path, url: str | None, secret: str | None = SECRET) -> None:
        super().__init__(smtp=True, webhook_url=url, webhook_secret=secret, log=log)

    def send_email(self, key: str, email: str = "ada@example.com") -> requests.Response:
        """A POST /send-email of a greeting to `email` with idempotency key `key`."""
        body = {"email": email, "message": "Happy birthday!"}
        headers = {"Idempotency-Key": key}
        return requests.post(f"{self.url}/send-email", json=body, headers=headers, timeout=5)

    def send_smtp(self, key: str, email: str = "ada@example.com") -> None:
        """A greeting to `email` through the SMTP side, its key in the Message-ID."""
        message = EmailMessage()
        message["From"] = "greetings@example.com"
        message["To"] = email
        message["Subject"] = "Happy birthday!"
        message["Message-ID"] = message_id_for(key, "example.com")
        message.set_content("Happy birthday!")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as client:
            client.send_message(message)

    def post_events(self, body: object) -> requests.Response:
        """A POST /events with `body` as JSON."""
        return requests.post(f"{self.url}/events", json=body, timeout=5)

    def events(self) -> list[dict]:
        """GET /events: the webhook requests made, with their outcomes."""
        return requests.get(f"{self.url}/events", timeout=5).json()

    def settled(self, count: int) -> list[dict]:
        """GET /events once it lists `count` requests, none of them still pending."""

        def done() -> list[dict] | None:
            made = self.events()
            finished = len(made) == count and all(r["outcome"] != "pending" for r in made)
            return made if finished else None

        return wait_until(done, 15, f"{count} webhook requests to be settled")


def signatures(received: Received) -> list[str]:
    """The hex digests of a request's Webhook-Signature, in order; each must be `v1=`."""
    values = received.headers["webhook-signature"].split(" ")
    assert all(value.startswith("v1=") for value in values), values
    return [value.removeprefix("v1=") for value in values]


def expected_signature(secret: str, received: Received) -> str:
    """HMAC-SHA256 over "<timestamp>.<raw body>" keyed with `secret`, in hex."""
    signed = received.headers["webhook-timestamp"].encode() + b"." + received.body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def assert_signed(received: Received, secrets: list[str]) -> None:
    """`received` is a webhook request as the contract says, with one valid signature per
    secret in `secrets`, in order, and a timestamp of now."""
    assert received.path == WEBHOOK_PATH
    assert received.headers["content-type"] == "application/json"
    timestamp = received.headers["webhook-timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 30
    digests = signatures(received)
    assert len(digests) == len(secrets)
    for digest, secret in zip(digests, secrets, strict=True):
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert hmac.compare_digest(digest, expected_signature(secret, received))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The module's webhook receiver."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def running(receiver: Receiver, tmp_path_factory) -> Iterator[EmittingProvider]:
    """The module's provider, sending its events to the receiver, signed with SECRET."""
    server = EmittingProvider(tmp_path_factory.mktemp("provider") / "gunicorn.log", receiver.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hook(receiver: Receiver) -> Receiver:
    """The module's receiver, with nothing received or planned."""
    receiver.clear()
    return receiver


@pytest.fixture
def local(running: EmittingProvider, hook: Receiver) -> EmittingProvider:
    """The module's provider, with nothing recorded, sent or planned."""
    running.reset()
    return running


@pytest.fixture
def start_provider(receiver: Receiver, tmp_path: Path) -> Iterator:
    """Start providers of a test's own (url, secret as EmittingProvider takes them);
    all stopped at the end."""
    started: list[EmittingProvider] = []

    def start(url: str | None, secret: str | None) -> EmittingProvider:
        server = EmittingProvider(tmp_path / f"gunicorn-{len(started)}.log", url, secret)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_an_http_delivery_is_reported_by_one_signed_delivered_event(local, hook):
    assert local.send_email(KEY, "ada@example.com").json()["status"] == "sent"

    [received] = hook.wait_for(1)
    assert_signed(received, [SECRET])
    event = received.json()
    [delivery] = local.deliveries()
    assert event == {
        "id": event["id"],
        "type": "delivered",
        "email": "ada@example.com",
        "idempotency_key": KEY,
        "at": delivery["delivered_at"],
    }
    assert EVENT_ID.match(event["id"])
    assert event["at"].endswith("+00:00")
    [made] = local.settled(1)
    assert (made["outcome"], made["status"], made["attempts"]) == ("sent", 200, 1)
    assert made["events"] == [event]


def test_an_smtp_delivery_is_reported_too(local, hook):
    local.send_smtp(KEY, "grace@example.com")

    [received] = hook.wait_for(1)
    assert_signed(received, [SECRET])
    event = received.json()
    assert (event["type"], event["email"], event["idempotency_key"]) == (
        "delivered",
        "grace@example.com",
        KEY,
    )


def test_a_duplicate_or_a_failed_send_emits_no_event(local, hook):
    assert local.send_email(KEY).ok
    assert local.send_email(KEY).json()["status"] == "duplicate"
    local.send_smtp(KEY)  # the same key over SMTP: a duplicate too
    local.control(fail_status=503, fail_count=1)
    assert local.send_email(OTHER_KEY).status_code == 503

    # Events leave one by one in order: once the next delivery's event has arrived, any
    # event for the sends before it would have too.
    assert local.send_email(OTHER_KEY).json()["status"] == "sent"
    received = hook.wait_for(2)
    assert [r.json()["idempotency_key"] for r in received] == [KEY, OTHER_KEY]
    assert len(local.settled(2)) == 2


def test_a_bounce_posted_to_events_reaches_the_receiver(local, hook):
    answer = local.post_events(
        {
            "type": "bounce",
            "bounce_type": "hard",
            "email": "ada@example.com",
            "idempotency_key": KEY,
        }
    )

    assert answer.status_code == 202
    event = answer.json()
    assert EVENT_ID.match(event["id"])
    assert event["at"].endswith("+00:00")
    [received] = hook.wait_for(1)
    assert_signed(received, [SECRET])
    assert received.json() == event
    assert list(received.json()) == ["id", "type", "bounce_type", "email", "idempotency_key", "at"]


def test_an_event_keeps_a_given_id_and_at_and_has_no_key_when_none_is_given(local, hook):
    given = {
        "id": "evt_given",
        "type": "complaint",
        "email": "ada@example.com",
        "at": "2024-05-17T09:00:00+02:00",
    }

    assert local.post_events(given).json() == given
    [received] = hook.wait_for(1)
    assert received.json() == given


def test_events_in_a_batch_arrive_in_one_request_as_a_json_array(local, hook):
    batch = [
        {"type": "bounce", "bounce_type": "soft", "email": "a@example.com", "idempotency_key": KEY},
        {"type": "complaint", "email": "b@example.com"},
        {"type": "delivered", "email": "c@example.com", "idempotency_key": OTHER_KEY},
    ]

    answer = local.post_events({"events": batch})

    assert answer.status_code == 202
    sent = answer.json()["events"]
    [made] = local.settled(1)
    [received] = hook.got()
    assert_signed(received, [SECRET])
    body = received.json()
    assert isinstance(body, list)
    assert body == sent == made["events"]
    assert [e["type"] for e in body] == ["bounce", "complaint", "delivered"]
    assert len({e["id"] for e in body}) == 3
    assert made["batch"] is True


def test_a_replay_sends_the_same_bytes_with_a_fresh_signature(local, hook):
    event = local.post_events({"type": "complaint", "email": "ada@example.com"}).json()
    [first] = hook.wait_for(1)

    answer = local.post_events({"replay": event["id"]})

    assert answer.status_code == 202
    assert answer.json() == event
    first, again = hook.wait_for(2)
    assert again.body == first.body
    assert again.json()["id"] == event["id"]
    assert_signed(again, [SECRET])
    assert local.settled(2)[1]["replay_of"] == event["id"]


def test_a_replay_of_an_event_sent_in_a_batch_sends_that_event_alone(local, hook):
    batch = [
        {"type": "complaint", "email": "a@example.com"},
        {"type": "complaint", "email": "b@example.com"},
    ]
    sent = local.post_events({"events": batch}).json()["events"]
    [first] = hook.wait_for(1)

    assert local.post_events({"replay": sent[1]["id"]}).status_code == 202

    _, again = hook.wait_for(2)
    assert again.json() == sent[1]
    # The event's own bytes, exactly as they stood inside the array.
    assert again.body in first.body


def test_a_replay_of_an_unknown_event_is_404(local, hook):
    answer = local.post_events({"replay": "evt_never_sent"})

    assert answer.status_code == 404
    assert local.events() == []


def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(local, hook):
    hook.plan(500, 500)

    event = local.post_events({"type": "complaint", "email": "ada@example.com"}).json()

    [made] = local.settled(1)
    assert (made["outcome"], made["attempts"], made["status"], made["error"]) == (
        "sent",
        3,
        200,
        None,
    )
    assert [t["status"] for t in made["tries"]] == [500, 500, 200]
    assert [t["error"] for t in made["tries"]] == ["HTTP 500", "HTTP 500", None]
    received = hook.got()
    assert [r.body for r in received] == [received[0].body] * 3
    assert received[0].json() == event
    for each in received:
        assert_signed(each, [SECRET])


def test_a_receiver_failing_every_time_gets_four_attempts_then_the_event_is_dropped(local, hook):
    hook.plan(503, 503, 503, 503)

    local.post_events({"type": "complaint", "email": "ada@example.com"})

    [made] = local.settled(1)
    assert (made["outcome"], made["attempts"], made["status"]) == ("dropped", 4, 503)
    assert made["error"] == "HTTP 503"
    assert len(hook.got()) == 4


def test_a_slow_receiver_does_not_hold_up_a_send(local, hook):
    hook.released.clear()  # the receiver keeps its answers back until released

    started = time.monotonic()
    assert local.send_email(KEY).ok
    hook.wait_for(1)
    assert local.send_email(OTHER_KEY).ok
    elapsed = time.monotonic() - started

    assert elapsed < 2
    hook.released.set()
    assert [r["outcome"] for r in local.settled(2)] == ["sent", "sent"]


def test_reset_clears_the_event_log(local, hook):
    local.post_events({"type": "complaint", "email": "ada@example.com"})
    local.settled(1)

    local.reset()

    assert local.events() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"type": "complaint"}], "body"),
        ({"email": "ada@example.com"}, "type"),
        ({"type": "opened", "email": "ada@example.com"}, "type"),
        ({"type": "complaint"}, "email"),
        ({"type": "complaint", "email": ""}, "email"),
        ({"type": "bounce", "email": "ada@example.com"}, "bounce_type"),
        ({"type": "bounce", "bounce_type": "medium", "email": "ada@example.com"}, "bounce_type"),
        ({"type": "complaint", "bounce_type": "hard", "email": "ada@example.com"}, "bounce_type"),
        ({"type": "complaint", "email": "ada@example.com", "at": "2024-05-17T09:00"}, "at"),
        (
            {"type": "complaint", "email": "ada@example.com", "idempotency_key": 7},
            "idempotency_key",
        ),
        ({"type": "complaint", "email": "ada@example.com", "colour": "red"}, "colour"),
        ({"events": []}, "events"),
        (
            {"events": [{"type": "complaint", "email": "a@example.com"}, {"type": "complaint"}]},
            "events[1].email",
        ),
        ({"replay": ""}, "replay"),
        ({"replay": "evt_1", "type": "complaint"}, "type"),
    ],
)
def test_a_bad_events_body_is_422_naming_the_field(local, hook, body, field):
    answer = local.post_events(body)

    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert answer.json()["message"]
    assert local.events() == []


def test_with_two_secrets_each_signature_verifies_with_its_own(start_provider, hook):
    rotating = start_provider(hook.url, "new-secret, old-secret")

    rotating.post_events({"type": "complaint", "email": "ada@example.com"})

    [received] = hook.wait_for(1)
    assert_signed(received, ["new-secret", "old-secret"])
    new, old = signatures(received)
    assert new != old
    assert not hmac.compare_digest(new, expected_signature("old-secret", received))


def test_without_webhook_secret_events_are_signed_with_the_default(start_provider, hook):
    defaulted = start_provider(hook.url, None)

    defaulted.post_events({"type": "complaint", "email": "ada@example.com"})

    [received] = hook.wait_for(1)
    assert_signed(received, [DEFAULT_SECRET])


@pytest.mark.parametrize("url", [None, ""], ids=["unset", "empty"])
def test_without_webhook_url_nothing_is_sent(start_provider, local, hook, url):
    silent = start_provider(url, SECRET)

    assert silent.send_email(KEY).json()["status"] == "sent"
    silent.send_smtp(OTHER_KEY)
    refused = silent.post_events({"type": "complaint", "email": "ada@example.com"})

    assert refused.status_code == 409
    assert silent.events() == []
    # A marker from the module's provider: once it has arrived, an event the silent one
    # had sent right after its deliveries would most likely have arrived too.
    marker = local.post_events({"type": "complaint", "email": "marker@example.com"}).json()
    assert [r.json()["id"] for r in hook.wait_for(1)] == [marker["id"]]
