"""The HTML pages: gallery + upload, scene with dots and ranked products, product, user switch.

Pages work without JavaScript (dots, chips and product cards are links; forms post); the
script adds drawing a search box on the photo. Every list shown logs its impressions; a
product opened from a list logs a click (through /click, which redirects, so a reload does not
count twice); the save buttons log saves.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    url_for,
)
from PIL import Image

from web.cards import product_card, scene_card
from web.errors import ApiError
from web.params import parse_adjective, parse_box, parse_int, parse_list_id, parse_user
from web.scenes import Scene
from web.security import safe_next, visitor_owner
from web.services import USER_COOKIE, Services, services_of
from web.shop_view import object_names, shopper_details, whole_look_strip
from web.uploads import THUMB_SIDE, thumb_path

bp = Blueprint("pages", __name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


def svc() -> Services:
    return services_of(current_app)


@bp.get("/")
def home():
    services = svc()
    groups: dict[str, list[dict]] = {}
    for scene in services.scenes.gallery():
        groups.setdefault(scene.category or "Scenes", []).append(scene_card(scene))
    # this browser's own photos only: nobody else's uploads are listed
    owner = visitor_owner(create=False)
    uploads = [scene_card(s) for s in services.scenes.uploads(owner, limit=12)]
    return render_template(
        "home.html", groups=groups, uploads=uploads, max_mb=services.max_upload_bytes / 1024 / 1024
    )


@bp.post("/upload")
def upload():
    services = svc()
    file = request.files.get("image")
    if file is None or not file.filename:
        raise ApiError(400, "choose a photo to upload")
    data = file.read(services.max_upload_bytes + 1)
    if len(data) > services.max_upload_bytes:
        raise ApiError(413, f"the photo is larger than {services.max_upload_bytes:,} bytes")
    receipt = services.scenes.add_upload(
        data,
        owner=visitor_owner(create=True),
        max_pixels=services.max_image_pixels,
        name=Path(file.filename).name[:100] or "upload",
    )
    return redirect(url_for("pages.scene", scene_id=receipt.scene_id), code=303)


@bp.get("/scene/<scene_id>")
def scene(scene_id: str):
    services = svc()
    scene = services.scenes.get(scene_id)
    box = parse_box(request.args.get("box"))
    adjective = parse_adjective(request.args.get("adj"), services)
    look = services.look(
        scene.scene_id,
        user_id=g.user_id,
        box=box,
        adjective=adjective,
        top_k=current_app.config["TOP_K"],
    )
    result = look.result
    count = len(result.objects)
    selected = parse_int(
        request.args.get("obj"), "object", default=0, low=0, high=max(0, count - 1)
    )
    shown = services.impressions(look, [selected] if count else [])
    base_args = {k: v for k, v in (("box", request.args.get("box")), ("adj", adjective)) if v}

    def link(**changes) -> str:
        args = {**base_args, **changes}
        args = {k: v for k, v in args.items() if v not in (None, "")}
        query = urlencode(args)
        return url_for("pages.scene", scene_id=scene.scene_id) + (f"?{query}" if query else "")

    dots = []
    names = object_names(result)
    for i, obj in enumerate(result.objects):
        b = obj.detection.box
        dots.append(
            {
                "index": i,
                "label": names[i],
                "category": obj.detection.category,
                "source": obj.detection.source,
                "x": 100 * (b.x1 + b.x2) / 2 / result.width,
                "y": 100 * (b.y1 + b.y2) / 2 / result.height,
                "left": 100 * b.x1 / result.width,
                "top": 100 * b.y1 / result.height,
                "w": 100 * b.width / result.width,
                "h": 100 * b.height / result.height,
                "url": link(obj=i if i else None),
            }
        )
    products = []
    if count:
        list_id = look.list_id(selected)
        for pos, hit in enumerate(result.objects[selected].products):
            # a trained ranker explains its order; the visual order's only reason would be
            # "similar look" on every card, so it says something only for a style chip
            reason = hit.reason
            if not reason and adjective and services.ranker_name == "visual":
                reason = f"more {adjective}"
            card = product_card(services, hit.product_id, hit.score, reason)
            card["click_url"] = url_for(
                "pages.click", product_id=hit.product_id, scene=scene.scene_id, pos=pos, rid=list_id
            )
            card["position"] = pos
            products.append(card)
    whole = whole_look_strip(services, result, link) if count > 1 else None
    chips = [
        {
            "name": a,
            "active": a == adjective,
            "url": link(adj=None if a == adjective else a, obj=selected or None),
        }
        for a in services.adjectives
    ]
    response = make_response(
        render_template(
            "scene.html",
            scene=scene,
            result=result,
            dots=dots,
            whole=whole,
            selected=selected,
            products=products,
            chips=chips,
            adjective=adjective,
            box=box,
            list_id=look.list_id(selected),
            personal=services.ranker_name != "visual",
            ranker_note=services.ranker_note,
            clear_url=link(box=None, obj=None),
            image_url=url_for("pages.scene_image", scene_id=scene.scene_id),
            timings={k: round(v * 1000) for k, v in result.timings.items()},
            cached=look.cached,
        )
    )
    # lets the load benchmark check that no impression is lost
    response.headers["X-Request-Id"] = look.request_id
    response.headers["X-Impressions"] = str(shown)
    return response


@bp.get("/click/<product_id>")
def click(product_id: str):
    """A product opened from a list: log the click, then show the product page."""
    services = svc()
    if not services.catalog.has_product(product_id):
        abort(404, f"product {product_id!r} is not in the catalog")
    scene_id = request.args.get("scene") or None
    if scene_id is not None and not services.scenes.has(scene_id):
        abort(404, f"scene {scene_id!r} does not exist")
    position = parse_int(request.args.get("pos"), "position", default=-1, low=0, high=10_000)
    list_id = parse_list_id(request.args.get("rid"))
    services.engagement(
        "click",
        user_id=g.user_id,
        product_id=product_id,
        scene_id=scene_id,
        position=None if position < 0 else position,
        request_id=list_id,
    )
    args = {
        k: v
        for k, v in (
            ("scene", scene_id),
            ("rid", list_id),
            ("pos", None if position < 0 else position),
        )
        if v is not None
    }
    return redirect(url_for("pages.product", product_id=product_id, **args), code=303)


@bp.get("/product/<product_id>")
def product(product_id: str):
    services = svc()
    if not services.catalog.has_product(product_id):
        abort(404, f"product {product_id!r} is not in the catalog")
    card = product_card(services, product_id)
    details = services.public_product(product_id)
    list_id = f"p{uuid.uuid4().hex[:15]}"
    similar = []
    for pos, (pid, score) in enumerate(services.similar(product_id, k=8)):
        item = product_card(services, pid, score, "looks similar")
        item["click_url"] = url_for("pages.click", product_id=pid, pos=pos, rid=list_id)
        similar.append(item)
    services.list_impressions(g.user_id, [s["product_id"] for s in similar], list_id)
    rooms = [scene_card(services.scenes.get(sid)) for sid in services.rooms_with(product_id)]
    extra = shopper_details(details)
    return render_template(
        "product.html",
        product=card,
        details=extra,
        similar=similar,
        rooms=rooms,
        from_scene=request.args.get("scene")
        if services.scenes.has(request.args.get("scene", ""))
        else None,
        from_rid=request.args.get("rid"),
        from_pos=request.args.get("pos"),
    )


@bp.post("/product/<product_id>/save")
def save(product_id: str):
    services = svc()
    if not services.catalog.has_product(product_id):
        abort(404, f"product {product_id!r} is not in the catalog")
    scene_id = request.form.get("scene") or None
    if scene_id is not None and not services.scenes.has(scene_id):
        abort(404, f"scene {scene_id!r} does not exist")
    position = parse_int(request.form.get("pos"), "position", default=-1, low=0, high=10_000)
    services.engagement(
        "save",
        user_id=g.user_id,
        product_id=product_id,
        scene_id=scene_id,
        position=None if position < 0 else position,
        request_id=parse_list_id(request.form.get("rid")),
    )
    fallback = url_for("pages.product", product_id=product_id)
    target = urlsplit(safe_next(request.form.get("next"), fallback))
    query = [(k, v) for k, v in parse_qsl(target.query) if k != "saved"]
    query.append(("saved", product_id))  # the page marks the saved product
    return redirect(urlunsplit(("", "", target.path, urlencode(query), "")), code=303)


@bp.post("/user")
def switch_user():
    choice = (request.form.get("user_typed") or "").strip() or request.form.get("user_id") or ""
    if choice == "__new__":
        import secrets

        user_id = f"guest-{secrets.token_hex(4)}"
    else:
        user_id = parse_user(choice.strip(), default="")
        if not user_id:
            raise ApiError(400, "choose a user or type a user id")
    response = redirect(safe_next(request.form.get("next"), url_for("pages.home")), code=303)
    response.set_cookie(
        USER_COOKIE, user_id, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
    )
    g.new_user = False  # the cookie just set wins over a fresh guest id
    return response


@bp.get("/img/catalog/<path:relpath>")
def catalog_image(relpath: str):
    """Product photos, only from the catalog's image folder (send_from_directory refuses ..)."""
    if Path(relpath).suffix.lower() not in IMAGE_SUFFIXES:
        abort(404)
    response = send_from_directory(svc().image_root, relpath, max_age=24 * 3600)
    return response


@bp.get("/img/scene/<scene_id>")
def scene_image(scene_id: str):
    services = svc()
    scene = services.scenes.get(scene_id)
    if not scene.image.is_file():
        abort(404, f"the photo of scene {scene_id!r} is missing from the data root")
    if request.args.get("size") == "thumb":
        try:
            return _thumbnail(scene, Path(current_app.instance_path) / "thumbs")
        except (OSError, Image.DecompressionBombError):
            abort(404, f"the photo of scene {scene_id!r} cannot be read")
    return send_file(scene.image, max_age=24 * 3600)


def _thumbnail(scene: Scene, folder: Path):
    # scene photos are ~1000 px; the gallery shows 160 of them, so it gets small copies
    folder.mkdir(parents=True, exist_ok=True)
    target = thumb_path(scene.image, folder)
    if not target.exists():
        with Image.open(scene.image) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            img.save(buffer, "JPEG", quality=82)
        tmp = target.with_suffix(f".{uuid.uuid4().hex[:6]}.part")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(target)
    return send_file(target, mimetype="image/jpeg", max_age=24 * 3600)
