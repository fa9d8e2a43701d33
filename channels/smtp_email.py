"""The SMTP channel: greetings handed to a mail server (DELIVERY_CHANNEL=smtp).

SMTP_URL names the server and how to reach it: `smtp://` in the clear, `smtp+starttls://`
(refuses to send if the server does not offer STARTTLS) or `smtps://` (TLS from the
first byte), with `user:password@` to log in. Each worker thread keeps one connection
open and opens a new one when the server has dropped it. One attempt (opening the
connection if needed, then MAIL, RCPT, DATA) takes at most PROVIDER_CONNECT_TIMEOUT +
PROVIDER_READ_TIMEOUT, as an HTTP call does, so the worker's lease outlasts it.

SMTP has no idempotency key: a crash between the server's 250 and our commit sends the
greeting again on the next attempt, with the same Message-ID (docs/design.md).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from datetime import UTC, datetime
from email.policy import SMTP

from channels.email_message import compose
from channels.port import OutgoingGreeting
from channels.smtp_replies import answer_for_reply, retry_later
from config import Settings
from domain.delivery_policy import ChannelAnswer


class _StartTlsMissing(Exception):
    """The server does not offer STARTTLS, which SMTP_URL requires."""


def _tls_context(extra_ca_file: str | None) -> ssl.SSLContext:
    """The system's certificate authorities (and SMTP_CA_FILE's), hostnames checked."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


def _reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _limit(connection: smtplib.SMTP, deadline: float) -> None:
    """The next exchange may take what is left of the attempt's time, no more."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the attempt's time ran out")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


class _Connection(smtplib.SMTP):
    """smtplib's connection, awaiting each reply only until the attempt's deadline: the
    socket's timeout starts again for every reply, so slow steps could add up past it."""

    deadline: float | None = None

    def getreply(self) -> tuple[int, bytes]:
        if self.deadline is not None:
            _limit(self, self.deadline)
        return super().getreply()


class _TlsConnection(_Connection, smtplib.SMTP_SSL):
    """The same, with TLS from the first byte (smtps://)."""


class SmtpChannel:
    """One kept SMTP connection per worker thread."""

    name = "smtp"

    def __init__(self, settings: Settings, threads: int = 16) -> None:
        """`threads` is not needed: each thread opens its own connection when it sends."""
        self.server = settings.smtp_server
        self.sender, self.envelope_sender = settings.mail_sender
        self.sender_domain = self.envelope_sender.rpartition("@")[2]
        self.connect_timeout = settings.provider_connect_timeout
        self.attempt_timeout = settings.provider_call_timeout.total_seconds()
        self.tls_context = _tls_context(settings.smtp_ca_file)
        self._local = threading.local()
        self._open_connections: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    def deliver(self, greeting: OutgoingGreeting) -> ChannelAnswer:
        """One transaction; trouble on the way is an answer (retry later), never raised."""
        deadline = time.monotonic() + self.attempt_timeout
        message = compose(greeting, self.sender, self.sender_domain, datetime.now(UTC))
        payload = message.as_bytes(policy=SMTP)
        kept = getattr(self._local, "connection", None)
        if kept is not None:
            answer = self._transaction(kept, payload, greeting.email, deadline, reused=True)
            if answer is not None:
                return answer
        try:
            connection = self._open(deadline)
        except _StartTlsMissing:
            return retry_later("the mail server does not offer STARTTLS: not sending in the clear")
        except smtplib.SMTPAuthenticationError as error:
            return retry_later(f"the mail server refused the login: {error.smtp_code}")
        except (OSError, smtplib.SMTPException) as error:
            return retry_later(f"cannot reach the mail server: {error!r}")
        answer = self._transaction(connection, payload, greeting.email, deadline, reused=False)
        return answer or retry_later("the mail server closed the connection")

    def _transaction(
        self,
        connection: _Connection,
        payload: bytes,
        recipient: str,
        deadline: float,
        reused: bool,
    ) -> ChannelAnswer | None:
        """MAIL, RCPT, DATA on `connection`; None when a kept connection turned out to be
        closed before the server accepted anything (then a new one may try)."""
        connection.deadline = deadline
        try:
            _limit(connection, deadline)
            code, reply = connection.mail(self.envelope_sender)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self._discard(connection)
            return None if reused else retry_later(f"connection lost: {error!r}")
        if code == 421 and reused:
            self._discard(connection)
            return None
        if code != 250:
            return self._refused(connection, code, reply, "mail", deadline)
        try:
            _limit(connection, deadline)
            code, reply = connection.rcpt(recipient)
            if code not in (250, 251):
                return self._refused(connection, code, reply, "rcpt", deadline)
            _limit(connection, deadline)
            code, reply = connection.data(payload)
        except smtplib.SMTPDataError as error:  # DATA itself answered without a 354
            return self._refused(connection, error.smtp_code, error.smtp_error, "data", deadline)
        except (OSError, smtplib.SMTPException) as error:
            self._discard(connection)
            return retry_later(f"connection lost during the transaction: {error!r}")
        if code != 250:
            return self._refused(connection, code, reply, "data", deadline)
        return answer_for_reply(code, _reply_text(reply), "data")

    def _refused(
        self, connection: smtplib.SMTP, code: int, reply: bytes | str, stage: str, deadline: float
    ) -> ChannelAnswer:
        """The answer a non-2xx reply means; the connection is reset for the next
        greeting, or let go when the server is closing it (421) or cannot reset."""
        if code == 421:
            self._discard(connection)
        else:
            try:
                _limit(connection, deadline)
                connection.rset()
            except (OSError, smtplib.SMTPException):
                self._discard(connection)
        return answer_for_reply(code, _reply_text(reply), stage)

    def _open(self, deadline: float) -> smtplib.SMTP:
        """A new connection for this thread: greeting, EHLO, STARTTLS and login as
        SMTP_URL asks."""
        timeout = max(0.001, min(self.connect_timeout, deadline - time.monotonic()))
        server = self.server
        connection: _Connection
        if server.security == "tls":
            connection = _TlsConnection(
                server.host, server.port, timeout=timeout, context=self.tls_context
            )
        else:
            connection = _Connection(server.host, server.port, timeout=timeout)
        connection.deadline = deadline
        try:
            _limit(connection, deadline)
            connection.ehlo_or_helo_if_needed()
            if server.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise _StartTlsMissing
                connection.starttls(context=self.tls_context)
                connection.ehlo()
            if server.username is not None:
                connection.login(server.username, server.password or "")
        except BaseException:
            connection.close()
            raise
        self._local.connection = connection
        with self._lock:
            self._open_connections.add(connection)
        return connection

    def _discard(self, connection: smtplib.SMTP) -> None:
        """Let a connection go: it is closed, or in a state no greeting should inherit."""
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            self._open_connections.discard(connection)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._open_connections = self._open_connections, set()
        for connection in connections:
            connection.close()
