"""What the pages show a shopper: object names, the "Shop the whole look" strip, the product
fields worth reading. Flask-aware only through ``url_for``."""

from __future__ import annotations

from flask import url_for

from web.cards import price_text, product_card
from web.services import Services

#: product-table fields that are the shop's bookkeeping, not something a shopper reads
INTERNAL_FIELDS = {"product_id", "name", "category", "source_folder", "price", "currency"}
INTERNAL_FIELDS |= {"buy_url", "url", "image", "row_id", "prod_name", "product_type"}
FIELD_TITLES = {"detail_desc": "Description", "colour_group_name": "Colour"}


def shopper_details(details: dict) -> dict[str, str]:
    """The product's fields a shopper cares about, under readable names: no ids or codes
    (``*_id``, ``*_no``, ``*_code``), no internal fields, nothing empty."""
    out: dict[str, str] = {}
    for key, value in details.items():
        if key in INTERNAL_FIELDS or value in (None, "") or key.endswith(("_id", "_no", "_code")):
            continue
        title = FIELD_TITLES.get(key) or key.replace("_name", "").replace("_", " ").capitalize()
        if title not in out and str(value) not in out.values():
            out[title] = str(value)
    return out


def object_names(result) -> list[str]:
    """What a shopper calls each object: its catalog category (else the detector's label),
    numbered when several share it ("chair 1", "chair 2")."""
    raw = []
    for obj in result.objects:
        d = obj.detection
        if d.source == "scene":
            raw.append("the whole photo")
        elif d.source == "user":
            raw.append("your selection")
        else:
            raw.append((d.category or d.label).replace("-", " "))
    counts = {n: raw.count(n) for n in raw}
    seen: dict[str, int] = {}
    names = []
    for n in raw:
        seen[n] = seen.get(n, 0) + 1
        names.append(f"{n} {seen[n]}" if counts[n] > 1 else n)
    return names


def whole_look_strip(services: Services, result, link) -> dict | None:
    """The "Shop the whole look" strip: one product per object, each linked to its dot."""
    look = services.choose_whole_look(result)
    if len(look.products) < 2:
        return None
    names = object_names(result)
    items = []
    for item in look.products:
        card = product_card(services, item.product_id)
        card["object"] = item.object
        card["object_name"] = names[item.object]
        card["object_url"] = link(obj=item.object or None)
        card["product_url"] = url_for("pages.product", product_id=item.product_id)
        items.append(card)
    total = [c for c in items if c["price"]]
    return {
        "items": items,
        "together": look.method == "coherence",
        "total": _total_price(services, look) if len(total) == len(items) else None,
    }


def _total_price(services: Services, look) -> str | None:
    currencies = {services.public_product(p.product_id).get("currency") for p in look.products}
    if len(currencies) != 1:
        return None
    total = sum(services.price(p.product_id) or 0.0 for p in look.products)
    return price_text(total, currencies.pop())
