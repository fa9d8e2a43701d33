"""/unsubscribe/<token>: the one-click unsubscribe link every greeting carries (RFC 8058).

No bearer token: the signed token in the URL is the authority (recipients/links.py).
GET shows a confirmation page with a button (server-rendered, no script: a mail
client's link checker that follows GET links unsubscribes no one); POST with the body
`List-Unsubscribe=One-Click`, what a mailbox provider sends from its own unsubscribe
button, opts the person out of that occasion at once and answers 200. A token this
service did not sign, or of a user since deleted, is a 404 and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from api import resources
from api.resources import current_pool
from db.transactions import transaction
from domain.occasions import OCCASIONS, UnknownOccasion
from errors import NotFound
from recipients.links import OptOut, read_token
from users import directory as users_service

blp = Blueprint("unsubscribe", __name__)
ONE_CLICK = "One-Click"


def _page(title: str, message: str, status: int, confirm: bool = False):
    body = render_template("unsubscribe/page.html", title=title, message=message, confirm=confirm)
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return body, status, headers


def _opt_out(token: str) -> OptOut | None:
    """What a token asks, if this service signed it for an occasion it knows."""
    opt_out = read_token(resources.current_settings().unsubscribe_signing_secret, token)
    if opt_out is None:
        return None
    try:
        OCCASIONS.by_type(opt_out.occasion)
    except UnknownOccasion:
        return None
    return opt_out


def _not_found():
    return _page("Link not valid", "This unsubscribe link is not one of ours, or has expired.", 404)


def _occasion_words(occasion: str) -> str:
    return occasion.lower().replace("_", " ")


@blp.get("/unsubscribe/<token>")
def confirm(token: str):
    """The confirmation page: nothing changes until its button is pressed."""
    opt_out = _opt_out(token)
    if opt_out is None:
        return _not_found()
    with transaction(current_pool()) as conn:
        try:
            user = users_service.get_user(conn, opt_out.user_id)
        except NotFound:
            return _not_found()
    words = _occasion_words(opt_out.occasion)
    if opt_out.occasion in user["unsubscribed"]:
        return _page("Unsubscribed", f"You no longer receive {words} greetings.", 200)
    message = f"Stop {words} greetings to {user['email']}?"
    return _page("Unsubscribe", message, 200, confirm=True)


@blp.post("/unsubscribe/<token>")
def one_click(token: str):
    """RFC 8058's one-click POST (and the confirmation page's button)."""
    if request.form.get("List-Unsubscribe") != ONE_CLICK:
        return _page("Not understood", "Send List-Unsubscribe=One-Click to unsubscribe.", 400)
    opt_out = _opt_out(token)
    if opt_out is None:
        return _not_found()
    with transaction(current_pool()) as conn:
        try:
            users_service.unsubscribe(conn, opt_out.user_id, [opt_out.occasion])
        except NotFound:
            return _not_found()
    words = _occasion_words(opt_out.occasion)
    return _page("Unsubscribed", f"You will receive no more {words} greetings.", 200)
