"""The SMTP channel against a real mail server (aiosmtpd, in this process): what it sends,
how it keeps its connections, what each reply means, TLS and login.

Every server here is told what to answer by its `Recorder`; nothing of SMTP is mocked.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from channels.message_ids import message_id_for
from channels.port import OutgoingGreeting
from channels.smtp_email import SmtpChannel
from config import Settings
from domain.delivery_policy import ChannelAnswer, Outcome

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
# The channel's own promise: one attempt takes at most connect + read timeouts; this
# margin covers the scheduling of this process's threads, not slowness of the server.
LONGEST_ATTEMPT = CONNECT_TIMEOUT + READ_TIMEOUT + 1.5
WAIT = 5.0  # the longest a test waits for the server to see something happen
SENDER = "Greetings <hi@example.com>"
SENDER_ADDRESS = "hi@example.com"
SENDER_DOMAIN = "example.com"
USER, PASSWORD = "greeter", "p@ss:w/rd?#"
PASSWORD_IN_URL = "p%40ss%3Aw%2Frd%3F%23"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def greeting(
    key: str = "1b4e28ba:birthday:2024-05-17",
    to: str = "ada@example.org",
    html: str | None = None,
    text: str = "Happy birthday, Ada!\n",
    subject: str = "Happy birthday!",
) -> OutgoingGreeting:
    return OutgoingGreeting(email=to, subject=subject, text=text, idempotency_key=key, html=html)


@dataclass(frozen=True)
class Received:
    """One message the server accepted (answered 250 to its DATA)."""

    peer: tuple
    mail_from: str
    mail_options: tuple[str, ...]
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls: bool
    login: bytes | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    def text(self, subtype: str = "plain") -> str:
        """The text/`subtype` part's text, with the line ends it had before SMTP's CRLF."""
        return self.message.get_body((subtype,)).get_content().replace("\r\n", "\n")

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class Recorder:
    """The aiosmtpd handler: records what arrives on which connection, and answers
    what the test asked for (each `answer_next` reply once, delays every time)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.messages: list[Received] = []
        self.data_seen: list[bytes] = []  # every DATA that reached its end, whatever the answer
        self._peers: dict[tuple, None] = {}  # each connection that said EHLO, in order
        self.ended: set[tuple] = set()
        self._live: dict[tuple, SMTP] = {}
        self._replies: dict[str, list[str]] = {"RCPT": [], "DATA": []}
        self._drops = 0
        self.delays: dict[str, float] = {}  # "EHLO", "DATA command" (before 354), "DATA"
        self.advertise_starttls = False  # offer STARTTLS even without a certificate

    # The test's side.

    def answer_next(self, stage: str, reply: str) -> None:
        with self._changed:
            self._replies[stage].append(reply)

    def drop_next_data(self) -> None:
        """Close the connection once the next message's data has arrived, unanswered."""
        with self._changed:
            self._drops += 1

    def wait_for(self, predicate: Callable[[], bool]) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, WAIT)

    @property
    def peers(self) -> list[tuple]:
        with self._changed:
            return list(self._peers)

    def data_for(self, key: str) -> list[bytes]:
        wanted = message_id_for(key, SENDER_DOMAIN).encode()
        with self._changed:
            return [raw for raw in self.data_seen if wanted in raw]

    def close_connections(self) -> list[tuple]:
        """Close every open connection (call on the server's loop); their peers."""
        with self._changed:
            live = dict(self._live)
        for server in live.values():
            if server.transport is not None:
                server.transport.close()
        return list(live)

    # The server's side (aiosmtpd hooks, on the server's thread).

    def _note(self, change: Callable[[], Any]) -> Any:
        with self._changed:
            result = change()
            self._changed.notify_all()
            return result

    async def _pause(self, step: str) -> None:
        if self.delays.get(step):
            await asyncio.sleep(self.delays[step])

    def connection_ended(self, peer: tuple) -> None:
        def change() -> None:
            self.ended.add(peer)
            self._live.pop(peer, None)

        self._note(change)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await self._pause("EHLO")
        session.host_name = hostname  # aiosmtpd leaves this to an EHLO hook

        def change() -> None:
            self._peers[session.peer] = None
            self._live[session.peer] = server

        self._note(change)
        if self.advertise_starttls and not any("STARTTLS" in line for line in responses):
            responses.insert(-1, "250-STARTTLS")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._changed:
            reply = self._replies["RCPT"].pop(0) if self._replies["RCPT"] else None
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        self._note(lambda: self.data_seen.append(raw))
        await self._pause("DATA")
        with self._changed:
            drop = self._drops > 0
            self._drops -= drop
            reply = None if drop or not self._replies["DATA"] else self._replies["DATA"].pop(0)
        if drop:
            server.transport.close()
            return "250 2.0.0 never sent: the connection is closed"
        if reply is not None:
            return reply
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        received = Received(
            peer=session.peer,
            mail_from=envelope.mail_from,
            mail_options=tuple(envelope.mail_options),
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            tls=server.transport.get_extra_info("ssl_object") is not None,
            login=login,
        )
        self._note(lambda: self.messages.append(received))
        return "250 2.0.0 queued"


class _Smtp(SMTP):
    """aiosmtpd's server, telling the recorder when a connection ends, and slow to say
    354 to DATA when the recorder asks it to be."""

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is not None and self.session.peer is not None:
            self.event_handler.connection_ended(self.session.peer)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        await self.event_handler._pause("DATA command")
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Smtp(self.handler, **self.SMTP_kwargs)


class MailServer:
    """A real SMTP server on 127.0.0.1, in a thread of this process."""

    def __init__(self, **options: Any) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self._options = options
        self.controller: _Controller | None = None

    def start(self) -> None:
        self.controller = _Controller(
            self.recorder,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="mail.test",
            ready_timeout=WAIT,
            **self._options,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def close_connections(self) -> list[tuple]:
        """Close every connection the server holds open; their peers."""
        assert self.controller is not None
        future = asyncio.run_coroutine_threadsafe(self._close(), self.controller.loop)
        return future.result(WAIT)

    async def _close(self) -> list[tuple]:
        return self.recorder.close_connections()


@pytest.fixture(autouse=True)
def quiet_mail_servers() -> Iterator[None]:
    """aiosmtpd says INFO about every connection, from its own thread; warnings suffice."""
    server_log = logging.getLogger("mail.log")
    level = server_log.level
    server_log.setLevel(logging.WARNING)
    yield
    server_log.setLevel(level)


@pytest.fixture
def start_server() -> Iterator[Callable[..., MailServer]]:
    servers: list[MailServer] = []

    def start(**options: Any) -> MailServer:
        server = MailServer(**options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mail_server(start_server) -> MailServer:
    return start_server()


@pytest.fixture
def make_channel() -> Iterator[Callable[..., SmtpChannel]]:
    channels: list[SmtpChannel] = []

    def make(url: str, **environ: str) -> SmtpChannel:
        settings = Settings.from_env(
            {
                "DELIVERY_CHANNEL": "smtp",
                "SMTP_URL": url,
                "MAIL_FROM": SENDER,
                "PROVIDER_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
                "PROVIDER_READ_TIMEOUT": str(READ_TIMEOUT),
                **environ,
            }
        )
        channel = SmtpChannel(settings, threads=2)
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


@pytest.fixture
def channel(make_channel, mail_server) -> SmtpChannel:
    return make_channel(f"smtp://127.0.0.1:{mail_server.port}")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: (key, certificate)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


@pytest.fixture
def server_tls(certificate) -> ssl.SSLContext:
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def accept_one_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def timed(channel: SmtpChannel, outgoing: OutgoingGreeting) -> tuple[ChannelAnswer, float]:
    started = time.monotonic()
    answer = channel.deliver(outgoing)
    return answer, time.monotonic() - started


# What arrives.


def test_a_greeting_arrives_once_with_its_headers_text_and_message_id(channel, mail_server):
    key = "1b4e28ba-2fa1:birthday:2024-05-17"

    answer = channel.deliver(greeting(key=key, to="ada@example.org"))

    assert answer.outcome is Outcome.DELIVERED
    assert answer.code == 250
    [received] = mail_server.recorder.messages
    assert received.mail_from == SENDER_ADDRESS
    assert received.rcpt_tos == ("ada@example.org",)
    message = received.message
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Happy birthday!"
    assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert received.message_id == message_id_for(key, SENDER_DOMAIN)
    assert message.get_content_type() == "text/plain"
    assert received.text() == "Happy birthday, Ada!\n"


def test_a_greeting_with_html_arrives_as_text_and_html_alternatives(channel, mail_server):
    html = "<p>Happy birthday, <b>Ada</b>!</p>\n"

    answer = channel.deliver(greeting(html=html))

    assert answer.outcome is Outcome.DELIVERED
    [received] = mail_server.recorder.messages
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert received.text("plain") == "Happy birthday, Ada!\n"
    assert received.text("html") == html


def test_every_attempt_of_one_greeting_carries_the_same_message_id(channel, mail_server):
    outgoing = greeting(key="u-7:birthday:2024-02-29")

    first = channel.deliver(outgoing)
    second = channel.deliver(outgoing)

    assert (first.outcome, second.outcome) == (Outcome.DELIVERED, Outcome.DELIVERED)
    ids = [received.message_id for received in mail_server.recorder.messages]
    assert ids == [message_id_for("u-7:birthday:2024-02-29", SENDER_DOMAIN)] * 2


def test_a_greeting_in_other_scripts_reaches_a_server_that_takes_only_7bit_mail(
    start_server, make_channel
):
    # A server without 8BITMIME (RFC 6152) refuses 8-bit data with a 5xx reply.
    server = start_server(decode_data=True, enable_SMTPUTF8=False)
    channel = make_channel(f"smtp://127.0.0.1:{server.port}")
    text = "Joyeux anniversaire, Zoë! С днём рождения 🎂\n"

    answer = channel.deliver(greeting(text=text, subject="Bonne fête, Zoë", html=f"<p>{text}</p>"))

    assert answer.outcome is Outcome.DELIVERED, answer
    [received] = server.recorder.messages
    assert received.raw.isascii()
    assert received.message["Subject"] == "Bonne fête, Zoë"
    assert received.text() == text


# Kept connections.


def test_deliveries_from_one_thread_share_one_connection(channel, mail_server):
    answers = [channel.deliver(greeting(key=f"u{n}:birthday:2024-05-17")) for n in range(3)]

    assert [answer.outcome for answer in answers] == [Outcome.DELIVERED] * 3
    recorder = mail_server.recorder
    assert len(recorder.peers) == 1
    assert {received.peer for received in recorder.messages} == set(recorder.peers)


def test_each_thread_delivers_on_a_connection_of_its_own(channel, mail_server):
    answers: list[ChannelAnswer] = []

    def deliver(n: int) -> None:
        answers.append(channel.deliver(greeting(key=f"thread{n}:birthday:2024-05-17")))

    for n in range(2):
        worker = threading.Thread(target=deliver, args=(n,))
        worker.start()
        worker.join(WAIT)

    assert [answer.outcome for answer in answers] == [Outcome.DELIVERED] * 2
    recorder = mail_server.recorder
    assert len(recorder.peers) == 2
    assert len({received.peer for received in recorder.messages}) == 2


@pytest.mark.parametrize("how", ["closed", "restarted"])
def test_a_connection_the_server_dropped_is_opened_again_and_sends_once(channel, mail_server, how):
    recorder = mail_server.recorder
    assert channel.deliver(greeting(key="before:birthday:2024-05-17")).outcome is (
        Outcome.DELIVERED
    )
    [first] = recorder.peers
    if how == "closed":
        mail_server.close_connections()
    else:
        mail_server.stop()
        mail_server.start()
    assert recorder.wait_for(lambda: first in recorder.ended)

    answer = channel.deliver(greeting(key="after:birthday:2024-05-17"))

    assert answer.outcome is Outcome.DELIVERED, answer
    assert len(recorder.data_for("after:birthday:2024-05-17")) == 1
    assert len(recorder.peers) == 2
    assert recorder.messages[-1].peer != first


# Replies.


@pytest.mark.parametrize(
    ("stage", "reply", "outcome", "code", "no_such_recipient"),
    [
        ("RCPT", "450 4.2.1 mailbox busy, try later", Outcome.RETRY_LATER, 450, False),
        ("DATA", "451 4.3.0 local error in processing", Outcome.RETRY_LATER, 451, False),
        ("RCPT", "550 5.1.1 no such user", Outcome.REFUSED, 550, True),
        ("RCPT", "550 mailbox unavailable", Outcome.REFUSED, 550, True),
        ("RCPT", "552 5.2.2 mailbox full", Outcome.REFUSED, 552, False),
        ("DATA", "554 5.7.1 rejected as spam", Outcome.REFUSED, 554, False),
    ],
)
def test_a_reply_becomes_its_answer_and_the_connection_serves_the_next_greeting(
    channel, mail_server, stage, reply, outcome, code, no_such_recipient
):
    recorder = mail_server.recorder
    recorder.answer_next(stage, reply)

    answer = channel.deliver(greeting(key="first:birthday:2024-05-17"))
    following = channel.deliver(greeting(key="second:birthday:2024-05-17"))

    assert answer.outcome is outcome
    assert answer.code == code
    assert answer.no_such_recipient is no_such_recipient
    assert reply in (answer.detail or "")
    if no_such_recipient:
        assert "no such recipient" in (answer.reason or "")
    assert following.outcome is Outcome.DELIVERED
    # RSET: the next greeting went on the same connection, and the refused one is not in it.
    assert len(recorder.peers) == 1
    [received] = recorder.messages
    assert received.message_id == message_id_for("second:birthday:2024-05-17", SENDER_DOMAIN)
    assert received.rcpt_tos == ("ada@example.org",)


def test_a_421_to_data_retries_later_and_the_next_greeting_opens_a_new_connection(
    channel, mail_server
):
    recorder = mail_server.recorder
    assert channel.deliver(greeting(key="one:birthday:2024-05-17")).outcome is Outcome.DELIVERED
    [first] = recorder.peers
    recorder.answer_next("DATA", "421 4.3.2 shutting down")

    answer = channel.deliver(greeting(key="two:birthday:2024-05-17"))
    following = channel.deliver(greeting(key="three:birthday:2024-05-17"))

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.code == 421
    assert following.outcome is Outcome.DELIVERED
    assert len(recorder.peers) == 2
    assert recorder.messages[-1].peer != first
    assert recorder.wait_for(lambda: first in recorder.ended)  # we let the old one go


def test_a_reply_that_is_not_smtp_retries_later_and_never_refuses(channel, mail_server):
    mail_server.recorder.answer_next("DATA", "hello, I am not a mail server")

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.RETRY_LATER, answer
    assert mail_server.recorder.messages == []


def test_a_connection_closed_in_the_middle_of_data_retries_later_then_delivers(
    channel, mail_server
):
    recorder = mail_server.recorder
    recorder.drop_next_data()

    answer = channel.deliver(greeting(key="dropped:birthday:2024-05-17"))
    following = channel.deliver(greeting(key="next:birthday:2024-05-17"))

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.reason
    assert following.outcome is Outcome.DELIVERED
    assert [received.message_id for received in recorder.messages] == [
        message_id_for("next:birthday:2024-05-17", SENDER_DOMAIN)
    ]
    assert len(recorder.peers) == 2


# Time and reachability.


def test_a_server_slower_than_the_read_timeout_retries_later_within_the_attempt_limit(
    channel, mail_server
):
    mail_server.recorder.delays["DATA"] = READ_TIMEOUT + CONNECT_TIMEOUT + 5

    answer, took = timed(channel, greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert took < LONGEST_ATTEMPT
    assert mail_server.recorder.messages == []


def test_a_server_slow_at_each_step_of_data_cannot_stretch_the_attempt(channel, mail_server):
    # Each reply comes before the read timeout; together they come after the attempt's.
    mail_server.recorder.delays.update({"DATA command": 2.5, "DATA": 2.5})

    answer, took = timed(channel, greeting())

    assert took < LONGEST_ATTEMPT
    assert answer.outcome is Outcome.RETRY_LATER


def test_a_server_slow_at_each_step_of_its_greeting_cannot_stretch_the_attempt(
    start_server, make_channel, server_tls, certificate
):
    server = start_server(tls_context=server_tls, require_starttls=True)
    server.recorder.delays["EHLO"] = 2.5  # before and after STARTTLS
    channel = make_channel(
        f"smtp+starttls://localhost:{server.port}", SMTP_CA_FILE=str(certificate[1])
    )

    answer, took = timed(channel, greeting())

    assert took < LONGEST_ATTEMPT
    assert answer.outcome is Outcome.RETRY_LATER
    assert server.recorder.messages == []


def test_nothing_listening_retries_later(make_channel):
    channel = make_channel(f"smtp://127.0.0.1:{free_port()}")

    answer, took = timed(channel, greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.no_such_recipient is False
    assert "cannot reach the mail server" in (answer.reason or "")
    assert took < LONGEST_ATTEMPT


# TLS and login.


def test_starttls_with_the_certificate_authority_given_delivers_encrypted(
    start_server, make_channel, server_tls, certificate
):
    server = start_server(tls_context=server_tls, require_starttls=True)
    channel = make_channel(
        f"smtp+starttls://localhost:{server.port}", SMTP_CA_FILE=str(certificate[1])
    )

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.DELIVERED, answer
    [received] = server.recorder.messages
    assert received.tls is True


def test_starttls_with_a_certificate_nobody_vouches_for_retries_later_and_sends_nothing(
    start_server, make_channel, server_tls
):
    server = start_server(tls_context=server_tls, require_starttls=True)
    channel = make_channel(f"smtp+starttls://localhost:{server.port}")

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert "certificate" in (answer.reason or "").lower()
    assert server.recorder.data_seen == []


def test_starttls_not_offered_retries_later_and_sends_nothing_in_the_clear(
    mail_server, make_channel
):
    channel = make_channel(f"smtp+starttls://127.0.0.1:{mail_server.port}")

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert "STARTTLS" in (answer.reason or "")
    assert mail_server.recorder.data_seen == []


def test_starttls_offered_but_refused_retries_later_and_sends_nothing_in_the_clear(
    mail_server, make_channel
):
    # The server says STARTTLS in its EHLO, then answers it 454 (it has no certificate).
    mail_server.recorder.advertise_starttls = True
    channel = make_channel(f"smtp+starttls://127.0.0.1:{mail_server.port}")

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert mail_server.recorder.data_seen == []


def test_smtps_delivers_over_tls_from_the_first_byte(
    start_server, make_channel, server_tls, certificate
):
    server = start_server(ssl_context=server_tls)
    channel = make_channel(f"smtps://localhost:{server.port}", SMTP_CA_FILE=str(certificate[1]))

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.DELIVERED, answer
    [received] = server.recorder.messages
    assert received.tls is True


def test_smtps_against_a_server_speaking_in_the_clear_retries_later(mail_server, make_channel):
    channel = make_channel(f"smtps://127.0.0.1:{mail_server.port}")

    answer, took = timed(channel, greeting())

    assert answer.outcome is Outcome.RETRY_LATER
    assert took < LONGEST_ATTEMPT
    assert mail_server.recorder.data_seen == []


@pytest.fixture
def login_server(start_server, server_tls) -> MailServer:
    return start_server(
        tls_context=server_tls,
        require_starttls=True,
        authenticator=accept_one_login,
        auth_required=True,
    )


def test_a_login_with_the_right_password_delivers(login_server, make_channel, certificate):
    channel = make_channel(
        f"smtp+starttls://{USER}:{PASSWORD_IN_URL}@localhost:{login_server.port}",
        SMTP_CA_FILE=str(certificate[1]),
    )

    answer = channel.deliver(greeting())

    assert answer.outcome is Outcome.DELIVERED, answer
    [received] = login_server.recorder.messages
    assert received.login == USER.encode()


def test_a_login_refused_retries_later_and_sends_nothing(login_server, make_channel, certificate):
    channel = make_channel(
        f"smtp+starttls://{USER}:wrong@localhost:{login_server.port}",
        SMTP_CA_FILE=str(certificate[1]),
    )

    answer = channel.deliver(greeting())

    # Our credentials are wrong, not the recipient's address: never a refusal for good.
    assert answer.outcome is Outcome.RETRY_LATER
    assert answer.no_such_recipient is False
    assert "login" in (answer.reason or "")
    assert login_server.recorder.data_seen == []


# Closing.


def test_close_ends_the_kept_connections_and_a_later_greeting_opens_a_new_one(channel, mail_server):
    recorder = mail_server.recorder
    assert channel.deliver(greeting(key="a:birthday:2024-05-17")).outcome is Outcome.DELIVERED
    [first] = recorder.peers

    channel.close()

    assert recorder.wait_for(lambda: first in recorder.ended)
    assert channel.deliver(greeting(key="b:birthday:2024-05-17")).outcome is Outcome.DELIVERED
    assert len(recorder.peers) == 2
    assert recorder.messages[-1].peer != first
