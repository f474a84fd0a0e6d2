"""Registry failures, each tagged with a ``reason`` callers can branch on
(the snapshot role rebuilds on ``unreachable`` and ``not_found`` only)."""

from loco_lan.errors import LocoError


class RegistryError(LocoError):
    reason = "registry"


class Unreachable(RegistryError):
    reason = "unreachable"


class NotFound(RegistryError):
    reason = "not_found"


class AuthFailed(RegistryError):
    reason = "auth"


class IntegrityError(RegistryError):
    """Content did not match its digest or declared size."""

    reason = "integrity"


class BadImage(RegistryError):
    """The manifest or layers are not a snapshot we can read."""

    reason = "bad_image"
