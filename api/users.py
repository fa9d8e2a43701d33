"""/users: create, read, replace, patch, delete and search users."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from flask import jsonify, request, url_for
from flask.views import MethodView

from api import idempotency_key, paging, resources
from api.paging import Blueprint
from api.resources import current_pool
from api.schemas import (
    USER_EXAMPLE,
    SubscriptionSchema,
    UserInputSchema,
    UserListArgsSchema,
    UserPatchSchema,
    UserSchema,
)
from api.user_json import users_json
from db.transactions import single_statement, transaction
from users import directory as users_service
from users import idempotent_requests as idempotency

blp = Blueprint(
    "users",
    __name__,
    url_prefix="/users",
    description="People who receive greetings: their time zone, birthday and anniversary.",
)
MAX_PAGE_SIZE = 100
_user_schema = UserSchema()
# Instances, not classes: given a class, webargs builds (and deep-copies the fields of)
# a new schema on every request. The OpenAPI document is the same either way.
_user_input_schema = UserInputSchema()
_user_list_args_schema = UserListArgsSchema()


def _clock_and_send_time():
    """Now, and the configured local send time: the inputs of planning."""
    return datetime.now(UTC), resources.current_settings().send_time


def _created(status: int, body: dict, replayed: bool):
    response = jsonify(body)
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("users.UserById", user_id=body["id"])
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blp.route("")
class Users(MethodView):
    @blp.arguments(_user_list_args_schema, location="query")
    @blp.response(200, UserSchema(many=True))
    @blp.alt_response(400, response=paging.BAD_CURSOR)
    @blp.paginate(max_page_size=MAX_PAGE_SIZE)
    def get(self, args, pagination_parameters):
        """List live users, oldest first; search names and email with `q`; find one by
        the id of the system of record with `external_id`.

        Walk every page by following `Link: rel="next"` (or passing X-Next-Cursor as
        `after`) until it is absent; numbered pages work too (X-Pagination)."""
        search, timezone, after = args.get("q"), args.get("timezone"), args.get("after")
        external_id = args.get("external_id")
        # Reads only: in autocommit each sees a snapshot of its own, as it would inside
        # a READ COMMITTED transaction, without the BEGIN and COMMIT round trips.
        with single_statement(current_pool()) as conn:
            rows, headers = paging.answer(
                pagination_parameters,
                after,
                fetch=lambda limit, offset, after: users_service.list_users(
                    conn,
                    search,
                    timezone,
                    limit=limit,
                    offset=offset,
                    after=after,
                    external_id=external_id,
                ),
                count=lambda: users_service.count_users(
                    conn, search, timezone, paging.EXACT_COUNT_UP_TO, external_id
                ),
                sort_key=lambda user: (user["created_at"], user["id"]),
                deepest=paging.DEEPEST_NUMBERED_ROW,
            )
        # Already in UserSchema's form (api/user_json.py): flask-smorest passes a
        # Response through as it is, and the schema above still documents it.
        return jsonify(users_json(rows)), headers

    @blp.arguments(_user_input_schema, example=USER_EXAMPLE)
    @blp.response(201, UserSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.doc(parameters=[idempotency_key.PARAMETER])
    def post(self, data):
        """Create a user; 409 when a live user has the email."""
        key = idempotency_key.from_request()
        pool = current_pool()

        settings = resources.current_settings()

        def create(conn):
            user = users_service.create_user(conn, data, datetime.now(UTC), settings.send_time)
            return 201, _user_schema.dump(user)

        if key is None:
            with transaction(pool) as conn:
                status, body = create(conn)
            return _created(status, body, replayed=False)
        result = idempotency.run_once(
            pool,
            scope="POST /users",
            key=key,
            request_fingerprint=idempotency.fingerprint("POST", "/users", request.get_json()),
            work=create,
            stale_after=settings.idempotency_stale_after,
            retention=settings.idempotency_key_retention,
        )
        return _created(result.status, result.body, result.replayed)


@blp.route("/<uuid:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, user_id: UUID):
        """One live user; 404 for unknown or deleted ids."""
        # One SELECT: in autocommit it is one round trip, not BEGIN, SELECT, COMMIT.
        with single_statement(current_pool()) as conn:
            return users_service.get_user(conn, user_id)

    @blp.arguments(_user_input_schema, example=USER_EXAMPLE)
    @blp.response(200, UserSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def put(self, data, user_id: UUID):
        """Replace every writable field; optional fields left out are cleared."""
        with transaction(current_pool()) as conn:
            return users_service.replace_user(conn, user_id, data, *_clock_and_send_time())

    @blp.arguments(UserPatchSchema(partial=True), example={"timezone": "Asia/Tokyo"})
    @blp.response(200, UserSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data, user_id: UUID):
        """Change only the given fields; an explicit null clears an optional one."""
        with transaction(current_pool()) as conn:
            return users_service.patch_user(conn, user_id, data, *_clock_and_send_time())

    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, user_id: UUID):
        """Soft-delete a user; their email can be used again."""
        with transaction(current_pool()) as conn:
            users_service.delete_user(conn, user_id)


@blp.route("/<uuid:user_id>/unsubscribe")
class UserUnsubscribe(MethodView):
    @blp.arguments(SubscriptionSchema, required=False, example={"occasions": ["ANNIVERSARY"]})
    @blp.response(200, UserSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data, user_id: UUID):
        """Opt the user out of the occasions given (no body or `{}`: all of them); what is
        pending for them is cancelled with the reason "unsubscribed"."""
        with transaction(current_pool()) as conn:
            return users_service.unsubscribe(conn, user_id, (data or {}).get("occasions"))


@blp.route("/<uuid:user_id>/resubscribe")
class UserResubscribe(MethodView):
    @blp.arguments(SubscriptionSchema, required=False, example={"occasions": ["ANNIVERSARY"]})
    @blp.response(200, UserSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data, user_id: UUID):
        """Opt the user back in to the occasions given (no body or `{}`: all of them);
        their greetings are planned again."""
        occasions = (data or {}).get("occasions")
        with transaction(current_pool()) as conn:
            return users_service.resubscribe(conn, user_id, occasions, *_clock_and_send_time())
