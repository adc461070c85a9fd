"""Product and scene cards: the dicts the pages render and the API returns."""

from __future__ import annotations

from flask import url_for

from web.scenes import Scene
from web.services import Services


def product_card(
    services: Services, product_id: str, score: float | None = None, reason: str | None = None
) -> dict:
    product = services.public_product(product_id)
    rel = services.image_relpath(product_id)
    return {
        "product_id": product_id,
        "name": product.get("name") or product_id,
        "category": product.get("category"),
        "score": score,
        "reason": reason,
        "image_url": url_for("pages.catalog_image", relpath=rel) if rel else None,
        "price": price_text(services.price(product_id), product.get("currency")),
        "buy_url": product.get("buy_url"),
    }


def shop_fields(services: Services, product_id: str) -> dict:
    """``price``, ``currency`` and ``buy_url`` of a product, those the catalog has."""
    product = services.public_product(product_id)
    out: dict = {}
    price = services.price(product_id)
    if price is not None:
        out["price"] = price
        if product.get("currency"):
            out["currency"] = str(product["currency"])
    if product.get("buy_url"):
        out["buy_url"] = product["buy_url"]
    return out


_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


def price_text(price: float | None, currency: str | None) -> str | None:
    """ "€12.99", "129.00 SEK", "12.99" — or None when the catalog has no price."""
    if price is None:
        return None
    code = str(currency or "").strip().upper()
    if code in _SYMBOLS:
        return f"{_SYMBOLS[code]}{price:,.2f}"
    return f"{price:,.2f} {code}".strip()


def scene_card(scene: Scene) -> dict:
    return {
        "scene_id": scene.scene_id,
        "title": scene.title,
        "category": scene.category,
        "url": url_for("pages.scene", scene_id=scene.scene_id),
        "thumb_url": url_for("pages.scene_image", scene_id=scene.scene_id, size="thumb"),
    }
