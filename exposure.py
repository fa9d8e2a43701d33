"""Secure by default: an API reachable from other machines must not start without a token.

`deploy/gunicorn.conf.py` asks `refusal` before gunicorn opens its sockets. Loopback
addresses and unix sockets reach only this machine, so `make run` needs no token;
anything else (0.0.0.0, a LAN address, a host name, an inherited socket) does, unless
ALLOW_ANONYMOUS=1 says the operator knows and accepts it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from config import Settings

WHAT_TO_SET = "API_TOKENS (or API_TOKEN, or API_READ_TOKENS)"


def _host(bind: str) -> str:
    """The host part of a gunicorn bind: `127.0.0.1:8000`, `[::1]:8000`, `localhost`."""
    if bind.startswith("["):
        return bind[1 : bind.find("]")]
    if bind.count(":") > 1:  # a bare IPv6 address
        return bind
    return bind.rpartition(":")[0] if ":" in bind else bind


def is_local(bind: str) -> bool:
    """Whether only this machine can reach the address (loopback or a unix socket)."""
    if bind.startswith("unix:"):
        return True
    if bind.startswith("fd://"):
        return False  # a socket handed over by systemd or a supervisor: could be anything
    host = _host(bind)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # empty (every interface) or a host name: assume reachable


def exposed_binds(binds: Iterable[str]) -> list[str]:
    """The addresses other machines may reach."""
    return [bind for bind in binds if not is_local(bind)]


def refusal(settings: Settings, binds: Iterable[str]) -> str | None:
    """Why the API must not start (a message naming the variable), or None."""
    exposed = exposed_binds(binds)
    if not exposed or settings.requires_token or settings.allow_anonymous:
        return None
    return (
        f"refusing to serve users and messages on {', '.join(exposed)} without a token: "
        f"set {WHAT_TO_SET}, bind to 127.0.0.1, or set ALLOW_ANONYMOUS=1 to serve "
        "them to anyone who can reach the port"
    )


def anonymous_warning(settings: Settings, binds: Iterable[str]) -> str | None:
    """The warning for an exposed API that ALLOW_ANONYMOUS opened to anyone, or None."""
    exposed = exposed_binds(binds)
    if not exposed or settings.requires_token:
        return None
    return (
        f"ALLOW_ANONYMOUS=1: users and messages on {', '.join(exposed)} are served to "
        f"anyone who can reach the port; set {WHAT_TO_SET} to require a token"
    )
