"""Typed results shared by every stage: boxes, detections, product hits and look results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from shopthelook.core.errors import BoxError


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the (EXIF-upright) image."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]

    @classmethod
    def parse(cls, text: str) -> Box:
        """Parse ``"x1,y1,x2,y2"`` as given on the command line or in a form."""
        inner = str(text).strip()
        if inner[:1] in "[(" and inner[-1:] in "])":  # "[x1, y1, x2, y2]" as JSON writes it
            inner = inner[1:-1]
        parts = [p.strip() for p in inner.split(",")]
        if len(parts) != 4:
            raise BoxError(f"box {text!r}: expected four numbers x1,y1,x2,y2")
        try:
            x1, y1, x2, y2 = (float(p) for p in parts)
        except ValueError:
            raise BoxError(f"box {text!r}: expected four numbers x1,y1,x2,y2") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise BoxError(f"box {text!r}: coordinates must be finite numbers")
        return cls(x1, y1, x2, y2)

    def validated(self, width: int, height: int, min_side: float = 2.0) -> Box:
        """Return the box if it is well-formed and overlaps the image, clipped to it."""
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise BoxError(
                f"box {self.as_list()}: x2 must exceed x1 and y2 must exceed y1 "
                f"(the image is {width}x{height})"
            )
        clipped = Box(
            max(0.0, self.x1),
            max(0.0, self.y1),
            min(float(width), self.x2),
            min(float(height), self.y2),
        )
        if clipped.width < min_side or clipped.height < min_side:
            raise BoxError(
                f"box {self.as_list()} lies outside the {width}x{height} image; "
                "give coordinates in pixels of the upright image"
            )
        return clipped

    def expanded(self, margin: float, width: int, height: int) -> Box:
        """Grow the box by ``margin`` of its size on each side, clipped to the image."""
        dx, dy = self.width * margin, self.height * margin
        return Box(
            max(0.0, self.x1 - dx),
            max(0.0, self.y1 - dy),
            min(float(width), self.x2 + dx),
            min(float(height), self.y2 + dy),
        )


@dataclass(frozen=True)
class Detection:
    """One object found in a scene (or given by the user)."""

    box: Box
    label: str
    score: float
    category: str | None
    #: catalog categories searched for this object, most specific first
    search_categories: tuple[str, ...] = ()
    #: "detector", "user" (a box the user drew) or "scene" (the whole image)
    source: str = "detector"


@dataclass
class ProductHit:
    product_id: str
    score: float
    category: str
    name: str | None = None
    image: str | None = None
    #: why the ranker placed it here, e.g. "similar shape · matches your style"
    reason: str | None = None
    features: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"product_id": self.product_id, "score": round(float(self.score), 5)}
        out["category"] = self.category
        if self.name is not None:
            out["name"] = self.name
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class LookObject:
    detection: Detection
    products: list[ProductHit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.detection
        return {
            "box": d.box.as_list(),
            "label": d.label,
            "category": d.category,
            "score": round(float(d.score), 4),
            "source": d.source,
            "products": [p.to_dict() for p in self.products],
        }


@dataclass
class LookResult:
    image: str
    width: int
    height: int
    objects: list[LookObject] = field(default_factory=list)
    #: a note for the person, e.g. "nothing detected: searched the whole scene"
    message: str | None = None
    #: seconds spent per stage, for benchmarks and the web page's footer
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "objects": [o.to_dict() for o in self.objects],
        }
        if self.message:
            out["message"] = self.message
        return out
