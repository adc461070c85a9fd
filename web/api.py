"""The JSON API: /api/look, /api/products/<id>, /api/scenes, /healthz and /openapi.json (the
OpenAPI 3 description of every endpoint); the events endpoints are in ``web.events_api``.
Every error is a JSON object {"error": message, "status": code} with a 4xx status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from shopthelook.core.types import Box
from web.cards import product_card, scene_card, shop_fields
from web.errors import ApiError
from web.params import (
    parse_adjective,
    parse_box,
    parse_category,
    parse_flag,
    parse_int,
    parse_text_id,
    parse_user,
    read_json,
)
from web.security import client_owner, visitor_owner
from web.services import ANONYMOUS, Services, services_of

bp = Blueprint("api", __name__)

LOOK_FIELDS = ("scene_id", "box", "user", "adjective", "top_k", "category", "whole_look")
OPENAPI_FILE = Path(__file__).with_name("openapi.json")


def svc() -> Services:
    return services_of(current_app)


def request_fields() -> tuple[Mapping[str, Any], Any]:
    """The fields of a JSON or form request, and the uploaded image file if any."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        data = read_json()
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


def _scaled(box: Box | None, scale: float) -> Box | None:
    """A box in pixels of the photo as sent, in pixels of the (reduced) stored photo."""
    if box is None or scale == 1.0:
        return box
    return Box(*(v * scale for v in box.as_list()))


@bp.post("/api/look")
def look():
    services = svc()
    data, file = request_fields()
    unknown = sorted(str(k) for k in set(data) - set(LOOK_FIELDS))
    if unknown:
        raise ApiError(
            400,
            f"unknown fields {unknown[:10]}; known: {', '.join(LOOK_FIELDS)} (and an 'image' file)",
        )
    scene_id = parse_text_id(data.get("scene_id"), "scene_id")
    # every field is checked before a photo is decoded or stored
    user_id = parse_user(data.get("user"), ANONYMOUS)
    box = parse_box(data.get("box"))
    adjective = parse_adjective(data.get("adjective"), services)
    top_k = parse_int(
        data.get("top_k"),
        "top_k",
        default=current_app.config["TOP_K"],
        low=1,
        high=current_app.config["TOP_K_MAX"],
    )
    category = parse_category(data.get("category"), services)
    whole_look = parse_flag(data.get("whole_look"), "whole_look")
    if file is not None and scene_id:
        raise ApiError(400, "give either an image file or a scene_id, not both")
    receipt = None
    if file is not None:
        payload = file.read(services.max_upload_bytes + 1)
        if len(payload) > services.max_upload_bytes:
            raise ApiError(
                413, f"image is larger than the limit of {services.max_upload_bytes:,} bytes"
            )
        name = Path(file.filename or "upload").name[:100] or "upload"
        # an API upload belongs to no browser session: listed nowhere, opened by its id
        receipt = services.scenes.add_upload(
            payload, owner=client_owner(), max_pixels=services.max_image_pixels, name=name
        )
        scene_id, box = receipt.scene_id, _scaled(box, receipt.scale)
    elif not scene_id:
        raise ApiError(400, "give an 'image' file (multipart/form-data) or a scene_id")
    elif not services.scenes.has(scene_id):
        raise ApiError(404, f"scene {scene_id!r} does not exist; GET /api/scenes lists them")
    try:
        result = services.look(
            scene_id, user_id=user_id, box=box, adjective=adjective, top_k=top_k, category=category
        )
    except BaseException:
        if receipt is not None:  # a refused request leaves no photo behind
            services.scenes.undo_upload(receipt)
        raise
    impressions = services.impressions(result)
    body = result.result.to_dict()
    for i, (obj_dict, obj) in enumerate(zip(body["objects"], result.result.objects, strict=True)):
        obj_dict["request_id"] = result.list_id(i)
        for product_dict, hit in zip(obj_dict["products"], obj.products, strict=True):
            product_dict["image_url"] = product_card(services, hit.product_id)["image_url"]
            product_dict["url"] = url_for("pages.product", product_id=hit.product_id)
            product_dict.update(shop_fields(services, hit.product_id))
    if whole_look:
        chosen = services.choose_whole_look(result.result).to_dict()
        for item in chosen["products"]:
            item["image_url"] = product_card(services, item["product_id"])["image_url"]
            item["url"] = url_for("pages.product", product_id=item["product_id"])
            item.update(shop_fields(services, item["product_id"]))
        body["whole_look"] = chosen
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
        for s in services.scenes.gallery() + services.scenes.uploads(visitor_owner(create=False))
    ]
    return jsonify({"scenes": items, "count": len(items)})


@bp.get("/healthz")
def healthz():
    """200 "ok"; 503 "degraded" while event writes fail or the writer has stopped."""
    services = svc()
    info = services.describe()
    events = services.events
    problem = None
    if not events.alive:
        problem = "the events writer has stopped"
    elif events.failing:
        problem = "event writes are failing"
    body = {"status": "degraded" if problem else "ok", **info}
    if problem:
        body["problem"] = problem
    return jsonify(body), 503 if problem else 200


@cache
def openapi_document() -> dict[str, Any]:
    return json.loads(OPENAPI_FILE.read_text())


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API (web/openapi.json)."""
    return jsonify(openapi_document())
