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
    }


def scene_card(scene: Scene) -> dict:
    return {
        "scene_id": scene.scene_id,
        "title": scene.title,
        "category": scene.category,
        "url": url_for("pages.scene", scene_id=scene.scene_id),
        "thumb_url": url_for("pages.scene_image", scene_id=scene.scene_id, size="thumb"),
    }
