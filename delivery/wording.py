"""The words of one greeting: the template its take found, rendered for its user.

A stored template was checked when it was saved; should it still fail on one user's
data (a runtime error the sample did not show, an empty text), the greeting goes out
in the occasion's built-in wording and the failure is logged: a template mistake never
costs anyone their greeting.
"""

from __future__ import annotations

import logging

from channels.port import OutgoingGreeting
from domain.occasions import OCCASIONS
from greetings.rendering import Rendered, Template, TemplateProblem, built_in, render, variables_for
from recipients import links

log = logging.getLogger(__name__)


def unsubscribe_url(row: dict, base_url: str, secret: str) -> str:
    """The one-click link that opts the greeted person out of this greeting's occasion."""
    return links.link_for(base_url, secret, row["user_id"], row["message_type"])


def wording_for(row: dict, unsubscribe_url: str) -> Rendered:
    """Subject, text and HTML of the taken greeting `row` (start_sending_many's columns)."""
    variables = variables_for(
        row["first_name"],
        row["last_name"],
        row["occasion_date"],
        row["original_date"],
        row["location_city"],
        row["location_country"],
        unsubscribe_url,
    )
    if row["template_text"] is not None:
        stored = Template(row["template_subject"], row["template_text"], row["template_html"])
        try:
            rendered = render(stored, variables)
            if rendered.text.strip() and rendered.subject:
                return rendered
            problem = "renders empty for this user"
        except TemplateProblem as error:
            problem = str(error)
        log.error(
            "template %s/%s failed, the built-in wording is sent instead: %s message_id=%s",
            row["message_type"],
            row["template_locale"],
            problem,
            row["id"],
            extra={"message_id": row["id"], "template_locale": row["template_locale"]},
        )
    return render(built_in(OCCASIONS.by_type(row["message_type"])), variables)


def outgoing(row: dict, wording: Rendered, unsubscribe_url: str) -> OutgoingGreeting:
    """What the channel gets for `row` in these words."""
    return OutgoingGreeting(
        email=row["email"],
        subject=wording.subject,
        text=wording.text,
        idempotency_key=row["idempotency_key"],
        html=wording.html,
        unsubscribe_url=unsubscribe_url,
    )
