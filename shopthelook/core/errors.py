"""Domain exceptions. Every message names the thing at fault and says what to do about it.

The CLI and the web layer turn these into one-line errors (CLI) or 4xx JSON (web); anything
that is *not* a ShopTheLookError is a bug and is allowed to surface as one.
"""

from __future__ import annotations


class ShopTheLookError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class ConfigError(ShopTheLookError):
    """A setting has an invalid value or a config file cannot be read."""


class ImageError(ShopTheLookError):
    """An image cannot be read: missing, empty, truncated, not an image, or too large."""


class BoxError(ShopTheLookError):
    """A user-given box is malformed or lies outside the image."""


class ProductTableError(ShopTheLookError):
    """A product table lacks required columns, has duplicate ids, or cannot be read."""


class BackboneError(ShopTheLookError):
    """An embedding backbone name is unknown or its weights cannot be loaded."""


class HeadError(ShopTheLookError):
    """A learned head is corrupt or does not fit the backbone it is used with."""


class CatalogError(ShopTheLookError):
    """A catalog folder is missing, corrupt, or was built with another backbone."""


class DatasetError(ShopTheLookError):
    """A dataset (scenes, pairs, groups) is missing a file or a required column."""


class QuotaError(ShopTheLookError):
    """A limit on what may be stored (uploads per shopper or in all) is reached."""
