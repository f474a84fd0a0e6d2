"""The project's one OCI registry client (distribution API v2).

``Client`` speaks the protocol; ``disk`` reads and writes snapshots in both forms.
"""

from loco_lan.oci.auth import Credentials
from loco_lan.oci.client import BlobReader, Client
from loco_lan.oci.disk import Extracted, RemoteDisk, extract, push_artifact, push_image, resolve
from loco_lan.oci.errors import AuthFailed, BadImage, IntegrityError, NotFound, RegistryError, Unreachable
from loco_lan.oci.reference import DEFAULT_REFERENCE, Reference, is_loopback_host

__all__ = [
    "DEFAULT_REFERENCE",
    "AuthFailed",
    "BadImage",
    "BlobReader",
    "Client",
    "Credentials",
    "Extracted",
    "IntegrityError",
    "NotFound",
    "Reference",
    "RegistryError",
    "RemoteDisk",
    "Unreachable",
    "extract",
    "is_loopback_host",
    "push_artifact",
    "push_image",
    "resolve",
]
