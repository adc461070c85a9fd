"""The engagement endpoints of the JSON API: POST /api/events and GET /api/users/<id>.

A 201 means every event of the request is stored: ``logged`` were new, ``duplicates`` had been
stored before (the same type, user, product, time and request id) and were not stored again.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from web.errors import ApiError
from web.params import parse_list_id, parse_text_id, parse_user, read_json
from web.security import may_read_history
from web.services import Services, services_of

log = logging.getLogger(__name__)

bp = Blueprint("api_events", __name__)

MAX_EVENTS_PER_REQUEST = 1000
ENGAGEMENT = ("click", "save", "purchase")


def svc() -> Services:
    return services_of(current_app)


def _event_items() -> list[Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, f"content type {request.mimetype or 'none'!r}: send application/json")
    data = read_json()
    if isinstance(data, dict) and "events" in data:
        items = data["events"]
        if not isinstance(items, list) or not items:
            raise ApiError(400, "'events' must be a non-empty list of event objects")
    elif isinstance(data, dict):
        items = [data]
    else:
        raise ApiError(400, 'malformed JSON: expected an event object or {"events": [...]}')
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise ApiError(413, f"{len(items)} events: send at most {MAX_EVENTS_PER_REQUEST} at once")
    return items


def _checked(services: Services, item: dict[str, Any]) -> dict[str, Any]:
    """One event of the request, checked against the catalog and the scenes (ApiError)."""
    from ranker.events import EVENT_TYPES, validate_event

    item = dict(item)
    if "user" in item and "user_id" not in item:
        item["user_id"] = item.pop("user")
    kind = item.get("event_type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ApiError(
            400, f"event_type {str(kind)[:40]!r} is unknown; use one of {list(EVENT_TYPES)}"
        )
    item["user_id"] = parse_user(item.get("user_id"), "")
    if not item["user_id"]:
        raise ApiError(400, "user_id is required")
    product_id = parse_text_id(item.get("product_id"), "product_id")
    if not product_id:
        raise ApiError(400, "product_id is required")
    if not services.catalog.has_product(product_id):
        raise ApiError(404, f"product {product_id!r} is not in the catalog")
    item["product_id"] = product_id
    scene_id = parse_text_id(item.get("scene_id"), "scene_id")
    if scene_id and not services.scenes.has(scene_id):
        raise ApiError(404, f"scene {scene_id!r} does not exist")
    item["request_id"] = parse_list_id(item.get("request_id"))
    position = item.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise ApiError(400, f"position {str(position)[:40]!r}: expected an integer >= 0")
    category = item.get("category")
    if category is None:
        item["category"] = services.category(product_id)
    elif not isinstance(category, str) or category not in services.catalog.categories():
        shown = repr(category)[:60] if isinstance(category, str) else type(category).__name__
        raise ApiError(
            400,
            f"category {shown} is not a catalog category; leave it out (the product's own "
            "category is used) or give one of GET /healthz's catalog categories",
        )
    if item.get("price") is None:
        item["price"] = services.price(product_id)
    validate_event(item)  # types, sizes, the time window: EventError -> 400
    return item


@bp.post("/api/events")
def events():
    """One event object, or {"events": [...]}; all are checked before any is stored."""
    from ranker.events import EventError

    services = svc()
    items = _event_items()
    rows = []
    for i, item in enumerate(items):
        where = f"event {i}: " if len(items) > 1 else ""
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}expected an object")
        try:
            rows.append(_checked(services, item))
        except ApiError as exc:
            raise ApiError(exc.status, where + exc.message) from None
        except EventError as exc:
            raise ApiError(400, f"{where}{exc}") from None
    done = services.events.log(rows)
    try:
        stored = int(done.result(timeout=30))
    except Exception as exc:  # the store refused or failed: the client should retry
        log.error("events API: %d event(s) not stored: %s", len(rows), exc)
        raise ApiError(503, "the events database could not store them; retry later") from None
    for user_id in {r["user_id"] for r in rows if r["event_type"] in ENGAGEMENT}:
        services.cache.forget_user(user_id)
    return jsonify({"logged": stored, "duplicates": len(rows) - stored}), 201


@bp.get("/api/users/<user_id>")
def user(user_id: str):
    """A shopper's engagement history (counts per event type): only their own (the cookie)
    or with the admin token; 404 for a user with none."""
    from ranker.events import EVENT_TYPES

    services = svc()
    user_id = parse_user(user_id, "")
    if not may_read_history(user_id):
        raise ApiError(
            403,
            f"the history of {user_id!r} is theirs: shop as that user (the 'Shopping as' "
            "switcher sets the stl_user cookie) or send Authorization: Bearer <admin token>",
        )
    counts = {t: services.events.count(user_id=user_id, event_type=t) for t in EVENT_TYPES}
    if not any(counts.values()):
        raise ApiError(404, f"user {user_id!r} has no events yet")
    return jsonify({"user_id": user_id, "events": counts})
