"""Catalog stage: the product table, its embeddings and one vector index per category.

``Catalog.build(table, embedder=..., taxonomy=..., out=...)`` makes a catalog folder,
``Catalog.load(path)`` opens one (refusing what does not match), ``catalog.search(queries,
category, k)`` retrieves candidates within one category, and ``add`` / ``remove`` /
``compact`` maintain it without a rebuild. Index kinds and their tuning are in
``catalog.ann``.
"""

from catalog.embedding import embed_products
from catalog.files import FORMAT_VERSION, MANIFEST, weights_fingerprint
from catalog.store import Catalog
from shopthelook.core.errors import CatalogError, ProductTableError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Catalog",
    "CatalogError",
    "ProductTableError",
    "embed_products",
    "weights_fingerprint",
]
