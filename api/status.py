"""The operator's status page at /status: server-rendered HTML and SVG, no script, no CDN.

Who may see it and press Retry is api/auth.py's to decide (the API's rules: reads need
a read or read-write token once any token is configured, Retry a read-write one, as
POST /messages/<id>/retry does). A request shows its token as `Authorization: Bearer
<token>` or carries the session cookie /status/login sets once the token has been
typed into its form; the token travels in a POST body, never in a URL (URLs end up in
access logs and browser history).

The Retry button is a form POST with a CSRF token: the double-submit kind, a random
value in an HttpOnly SameSite=Strict cookie that the form repeats, so it works across
processes without a server secret. Form values are compared as bytes, so no value can
turn into a 500.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from api import auth, resources
from api.resources import current_pool
from api.status_charts import hourly_bars
from db.transactions import transaction
from delivery import messages as messages_service
from domain import statuses
from domain.occasions import OCCASIONS
from errors import DomainError, NotFound
from operations import status_page

CSRF_COOKIE = "birthday_status_csrf"
_REDIRECT_TARGET = re.compile(r"[\x21-\x7e]{1,2048}")
PAGE_SIZE = 50
MAX_PAGE = 10_000
MESSAGE_TYPES = OCCASIONS.types
NOTICES = {
    "retried": "Greeting {id} is due again: the next dispatch run sends it.",
    "not-retryable": "Greeting {id} was not retried: only FAILED or EXPIRED greetings can be.",
    "not-found": "Greeting {id} does not exist.",
}

blp = Blueprint(
    "status",
    __name__,
    url_prefix="/status",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def _require_status_access() -> Response | None:
    """Reads of /status: what api/auth.py allows a reader, else the sign-in form (401)."""
    settings = resources.current_settings()
    if auth.may_read(settings, auth.request_scope(settings)):
        return None
    return _login_page(401, next_url=request.full_path.rstrip("?"))


def _require_write_access() -> Response | None:
    """Retry changes a greeting: what api/auth.py allows a writer, else 403."""
    settings = resources.current_settings()
    if auth.may_write(settings, auth.request_scope(settings)):
        return None
    return _login_page(403, next_url=_safe_next(request.form.get("next")), write=True)


def _login_page(code: int, next_url: str, error: str | None = None, write: bool = False):
    body = render_template(
        "status/login.html",
        next_url=next_url,
        error=error,
        write=write,
        writable=bool(resources.current_settings().read_write_tokens),
    )
    return Response(body, status=code, mimetype="text/html")


def _safe_next(target: str | None) -> str:
    """Only a path inside /status may be a redirect target (no open redirect), written in
    the printable ASCII a Location header may carry (a newline would end the header)."""
    if not _REDIRECT_TARGET.fullmatch(target or ""):
        return url_for("status.overview")
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        return url_for("status.overview")
    if parts.scheme or parts.netloc or not parts.path.startswith("/status"):
        return url_for("status.overview")
    return target


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == request.host_url.rstrip("/")


@blp.before_request
def _guard() -> Response | None:
    """CSRF on every POST, then the access rule on every page but the login form."""
    g.csrf_token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    if request.method == "POST":
        given = request.form.get("csrf_token", "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (cookie and auth.same_secret(given, cookie) and _same_origin()):
            body = render_template(
                "status/error.html", message="The form has expired: reload the page and try again."
            )
            return Response(body, status=400, mimetype="text/html")
    if request.endpoint in {"status.login", "status.static"}:
        return None
    return _require_status_access()


@blp.after_request
def _headers(response: Response) -> Response:
    if request.cookies.get(CSRF_COOKIE) != g.get("csrf_token"):
        response.set_cookie(
            CSRF_COOKIE,
            g.csrf_token,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/status",
        )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


@blp.app_template_filter("status_utc")
def _utc_text(moment: datetime) -> str:
    """A moment as `YYYY-MM-DD HH:MM:SS UTC`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page_arg() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)


def _notice() -> str | None:
    template = NOTICES.get(request.args.get("notice", ""))
    return template.format(id=request.args.get("id", type=int)) if template else None


def _summary() -> dict:
    settings = resources.current_settings()
    return resources.current().status_summary.get(
        lambda: status_page.read_summary(current_pool(), settings, datetime.now(UTC))
    )


@blp.get("")
def overview() -> str:
    """Figures at a glance: greetings by status and day, backlog, sends, scheduler, queues."""
    settings = resources.current_settings()
    summary = _summary()
    return render_template(
        "status/overview.html",
        s=summary,
        settings=settings,
        cache_seconds=resources.current().status_summary.seconds,
        sent_chart=hourly_bars(summary["sent_hourly"]),
        due_chart=hourly_bars(summary["due_hourly"]),
        occasions=OCCASIONS.types,
        notice=_notice(),
    )


@blp.get("/upcoming")
def upcoming() -> str:
    """SCHEDULED greetings of the next 24 hours, in UTC and in each user's local time."""
    message_type = request.args.get("type") if request.args.get("type") in MESSAGE_TYPES else None
    with transaction(current_pool()) as conn:
        page = status_page.upcoming(conn, datetime.now(UTC), message_type, _page_arg(), PAGE_SIZE)
    hourly = _summary()["due_hourly"][: status_page.UPCOMING_HOURS]
    return render_template(
        "status/upcoming.html",
        page=page,
        message_type=message_type,
        types=MESSAGE_TYPES,
        hours=status_page.UPCOMING_HOURS,
        hourly=hourly,
    )


@blp.get("/failures")
def failures() -> str:
    """FAILED and EXPIRED greetings with the provider's answer, and a Retry button each."""
    status = request.args.get("status")
    status = status if status in statuses.OPERATOR_RETRYABLE else None
    days = min(max(request.args.get("days", 7, type=int) or 7, 1), 31)
    with transaction(current_pool()) as conn:
        page = status_page.failures(conn, datetime.now(UTC), status, days, _page_arg(), PAGE_SIZE)
    # Retry comes back here: the same filters and page, without an earlier notice.
    here = url_for("status.failures", status=status, days=days, page=page.page)
    return render_template(
        "status/failures.html", page=page, status=status, days=days, here=here, notice=_notice()
    )


@blp.get("/stuck")
def stuck() -> str:
    """QUEUED and SENDING greetings whose lease ran out: recovery should pick them up."""
    with transaction(current_pool()) as conn:
        page = status_page.stuck(conn, datetime.now(UTC), _page_arg(), PAGE_SIZE)
    return render_template("status/stuck.html", page=page, now=datetime.now(UTC))


@blp.post("/messages/<int:message_id>/retry")
def retry(message_id: int) -> Response:
    """The Retry button: the same operation as POST /messages/<id>/retry."""
    denied = _require_write_access()
    if denied is not None:
        return denied
    with transaction(current_pool()) as conn:
        messages_service.retry_message(conn, message_id, datetime.now(UTC))
    return _back("retried", message_id)


@blp.errorhandler(DomainError)
def _retry_refused(error: DomainError) -> Response:
    """A Retry on a missing or not-retryable greeting goes back with a notice."""
    message_id = request.view_args.get("message_id") if request.view_args else None
    return _back("not-found" if isinstance(error, NotFound) else "not-retryable", message_id)


def _back(notice: str, message_id: int | None) -> Response:
    target = _safe_next(request.form.get("next"))
    separator = "&" if "?" in target else "?"
    return redirect(f"{target}{separator}{urlencode({'notice': notice, 'id': message_id})}", 303)


@blp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """A form for the token; a right one sets the session cookie and goes back."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return _login_page(200, next_url)
    token = auth.login_token(resources.current_settings(), request.form.get("token", ""))
    if token is None:
        return _login_page(401, next_url, error="That token is not accepted.")
    response = redirect(next_url, 303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        auth.session_value(token, time.time()),
        max_age=auth.SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/status",
    )
    return response


@blp.post("/logout")
def logout() -> Response:
    """Forget the session cookie."""
    response = redirect(url_for("status.login"), 303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/status")
    return response


def init_app(app) -> None:
    """Register the page (its per-process summary cache is built with the app's resources)."""
    app.register_blueprint(blp)
