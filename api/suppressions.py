"""/suppressions: addresses never sent to, by hand or by the provider's word."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.views import MethodView

from api import paging, resources
from api.paging import Blueprint
from api.resources import current_pool
from api.suppression_schemas import (
    SuppressionInputSchema,
    SuppressionListArgsSchema,
    SuppressionSchema,
)
from db.transactions import transaction
from errors import SuppressionNotFound
from recipients import suppression
from repositories import suppressions as suppression_list

blp = Blueprint(
    "suppressions",
    __name__,
    description="Addresses never sent to: added by hand, when a channel reports no such "
    "mailbox (SMTP 5.1.x, the email API's no_such_recipient), or when the provider reports a "
    "hard bounce or a complaint (POST /webhooks/provider). Their pending greetings are "
    "CANCELLED with the reason `address suppressed: <reason>`; removing an address plans its "
    "user's greetings again.",
)
MAX_PAGE_SIZE = 100


@blp.route("/suppressions")
class Suppressions(MethodView):
    @blp.arguments(SuppressionListArgsSchema, location="query")
    @blp.response(200, SuppressionSchema(many=True))
    @blp.alt_response(400, response=paging.BAD_CURSOR)
    @blp.paginate(max_page_size=MAX_PAGE_SIZE)
    def get(self, args, pagination_parameters):
        """Suppressed addresses, oldest first, optionally of one reason (paged like /users)."""
        reason = args.get("reason")
        with transaction(current_pool()) as conn:
            return paging.answer(
                pagination_parameters,
                args.get("after"),
                fetch=lambda limit, offset, after: suppression_list.list_page(
                    conn, reason, limit, offset, after
                ),
                count=lambda: suppression_list.count(conn, reason, paging.EXACT_COUNT_UP_TO),
                sort_key=lambda row: (row["created_at"], row["email"]),
            )

    @blp.arguments(SuppressionInputSchema, example={"email": "ada@example.com", "reason": "manual"})
    @blp.response(201, SuppressionSchema)
    @blp.alt_response(200, schema=SuppressionSchema, description="Already suppressed")
    @blp.alt_response(401, response="UNAUTHORIZED")
    def post(self, data):
        """Suppress an address (201; 200 when it already was, its first reason kept); its
        pending greetings are cancelled."""
        with transaction(current_pool()) as conn:
            row = suppression.suppress(
                conn, data["email"], data["reason"], "api", data.get("detail")
            )
        return row, 201 if row["created"] else 200


@blp.route("/suppressions/<string:email>")
class SuppressionByEmail(MethodView):
    @blp.response(200, SuppressionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, email: str):
        """One suppressed address (any case)."""
        with transaction(current_pool()) as conn:
            row = suppression_list.get(conn, email)
        if row is None:
            raise SuppressionNotFound(email)
        return row

    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, email: str):
        """Send to the address again: its user's greetings are planned again."""
        settings = resources.current_settings()
        with transaction(current_pool()) as conn:
            suppression.unsuppress(conn, email, datetime.now(UTC), settings.send_time)
