"""The JSON API: /api/look, /api/products/<id>, /api/events, /api/users/<id>, /api/scenes,
/healthz. Every error is a JSON object {"error": message, "status": code} with a 4xx status.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from web.cards import product_card, scene_card
from web.errors import ApiError
from web.params import (
    parse_adjective,
    parse_box,
    parse_category,
    parse_int,
    parse_list_id,
    parse_text_id,
    parse_user,
)
from web.services import ANONYMOUS, Services, services_of

bp = Blueprint("api", __name__)

MAX_EVENTS_PER_REQUEST = 1000
ENGAGEMENT = ("click", "save", "purchase")


def svc() -> Services:
    return services_of(current_app)


def request_fields() -> tuple[Mapping[str, Any], Any]:
    """The fields of a JSON or form request, and the uploaded image file if any."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, 'malformed JSON: expected an object like {"scene_id": ...}')
        return data, None
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return request.form, request.files.get("image")
    raise ApiError(
        415,
        f"content type {mimetype or 'none'!r}: send application/json, or "
        "multipart/form-data with an 'image' file",
    )


@bp.post("/api/look")
def look():
    services = svc()
    data, file = request_fields()
    unknown = sorted(set(data) - {"scene_id", "box", "user", "adjective", "top_k", "category"})
    if unknown:
        raise ApiError(
            400,
            f"unknown fields {unknown}; known: scene_id, box, user, adjective, "
            "top_k, category (and an 'image' file)",
        )
    scene_id = parse_text_id(data.get("scene_id"), "scene_id")
    if file is not None and scene_id:
        raise ApiError(400, "give either an image file or a scene_id, not both")
    if file is not None:
        payload = file.read(services.max_upload_bytes + 1)
        if len(payload) > services.max_upload_bytes:
            raise ApiError(
                413, f"image is larger than the limit of {services.max_upload_bytes:,} bytes"
            )
        name = Path(file.filename or "upload").name[:100] or "upload"
        scene_id = services.scenes.add_upload(
            payload, max_pixels=services.max_image_pixels, name=name
        ).scene_id
    elif not scene_id:
        raise ApiError(400, "give an 'image' file (multipart/form-data) or a scene_id")
    elif not services.scenes.has(scene_id):
        raise ApiError(404, f"scene {scene_id!r} does not exist; GET /api/scenes lists them")
    result = services.look(
        scene_id,
        user_id=parse_user(data.get("user"), ANONYMOUS),
        box=parse_box(data.get("box")),
        adjective=parse_adjective(data.get("adjective"), services),
        top_k=parse_int(
            data.get("top_k"),
            "top_k",
            default=current_app.config["TOP_K"],
            low=1,
            high=current_app.config["TOP_K_MAX"],
        ),
        category=parse_category(data.get("category"), services),
    )
    impressions = services.impressions(result)
    body = result.result.to_dict()
    for i, (obj_dict, obj) in enumerate(zip(body["objects"], result.result.objects, strict=True)):
        obj_dict["request_id"] = result.list_id(i)
        for product_dict, hit in zip(obj_dict["products"], obj.products, strict=True):
            product_dict["image_url"] = product_card(services, hit.product_id)["image_url"]
            product_dict["url"] = url_for("pages.product", product_id=hit.product_id)
    response = jsonify(
        {
            "scene_id": result.scene_id,
            "user": result.user_id,
            "request_id": result.request_id,
            "impressions": impressions,
            "scene_url": url_for("pages.scene", scene_id=result.scene_id),
            **body,
        }
    )
    return response


@bp.get("/api/products/<product_id>")
def product(product_id: str):
    services = svc()
    if not services.catalog.has_product(product_id):
        raise ApiError(404, f"product {product_id!r} is not in the catalog")
    k = parse_int(request.args.get("k"), "k", default=8, low=0, high=50)
    user_id = parse_user(request.args.get("user"), ANONYMOUS)
    details = services.public_product(product_id)
    details["image_url"] = product_card(services, product_id)["image_url"]
    details["url"] = url_for("pages.product", product_id=product_id)
    list_id = f"p{uuid.uuid4().hex[:15]}"
    similar = [
        {
            "product_id": pid,
            "score": round(score, 5),
            **{
                k: v
                for k, v in product_card(services, pid).items()
                if k in ("name", "category", "image_url")
            },
        }
        for pid, score in services.similar(product_id, k=k)
    ]
    services.list_impressions(user_id, [s["product_id"] for s in similar], list_id)
    rooms = [
        {key: card[key] for key in ("scene_id", "title", "category", "url")}
        for card in (scene_card(services.scenes.get(s)) for s in services.rooms_with(product_id))
    ]
    return jsonify({"product": details, "similar": similar, "request_id": list_id, "rooms": rooms})


@bp.post("/api/events")
def events():
    """One event object, or {"events": [...]}; all are checked before any is stored."""
    from ranker.events import EVENT_TYPES, EventError, validate_event

    services = svc()
    if request.mimetype != "application/json":
        raise ApiError(415, f"content type {request.mimetype or 'none'!r}: send application/json")
    data = request.get_json(silent=True)
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
    rows = []
    for i, item in enumerate(items):
        where = f"event {i}: " if len(items) > 1 else ""
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}expected an object")
        item = dict(item)
        if "user" in item and "user_id" not in item:
            item["user_id"] = item.pop("user")
        if item.get("event_type") not in EVENT_TYPES:
            raise ApiError(
                400,
                f"{where}event_type {item.get('event_type')!r} is unknown; "
                f"use one of {list(EVENT_TYPES)}",
            )
        try:
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
            item.setdefault("category", services.category(product_id))
            if item.get("price") is None:
                item["price"] = services.price(product_id)
            validate_event(item)
        except ApiError as exc:
            raise ApiError(exc.status, where + exc.message) from None
        except EventError as exc:
            raise ApiError(400, f"{where}{exc}") from None
        rows.append(item)
    done = services.events.log(rows)
    try:
        done.result(timeout=30)
    except Exception as exc:  # the store refused or failed: the client should retry
        raise ApiError(503, f"events could not be stored ({exc}); retry later") from None
    for user_id in {r["user_id"] for r in rows if r["event_type"] in ENGAGEMENT}:
        services.cache.forget_user(user_id)
    return jsonify({"logged": len(rows)}), 201


@bp.get("/api/users/<user_id>")
def user(user_id: str):
    """A user's engagement history (counts per event type); 404 for a user with none."""
    from ranker.events import EVENT_TYPES

    services = svc()
    user_id = parse_user(user_id, "")
    counts = {t: services.events.count(user_id=user_id, event_type=t) for t in EVENT_TYPES}
    if not any(counts.values()):
        raise ApiError(404, f"user {user_id!r} has no events yet")
    return jsonify({"user_id": user_id, "events": counts})


@bp.get("/api/scenes")
def scenes():
    services = svc()
    items = [
        {
            "scene_id": s.scene_id,
            "title": s.title,
            "category": s.category,
            "source": s.source,
            "url": url_for("pages.scene", scene_id=s.scene_id),
            "image_url": url_for("pages.scene_image", scene_id=s.scene_id),
        }
        for s in services.scenes.gallery() + services.scenes.uploads()
    ]
    return jsonify({"scenes": items, "count": len(items)})


@bp.get("/healthz")
def healthz():
    services = svc()
    info = services.describe()
    writer_ok = services.events.alive
    status = 200 if writer_ok else 503
    return jsonify({"status": "ok" if writer_ok else "events writer stopped", **info}), status
