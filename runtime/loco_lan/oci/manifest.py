"""Manifests: the media types we read and write, platform selection, and builders."""

import hashlib
import json
from dataclasses import dataclass

from loco_lan.oci.errors import BadImage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
QCOW2 = "application/vnd.loco.disk.qcow2"
"""Layer (and artifact) type of form (b): the blob is the qcow2 itself."""

TITLE = "org.opencontainers.image.title"
SOURCE = "org.opencontainers.image.source"
CREATED = "org.opencontainers.image.created"
DISK_SHA256 = "vnd.loco.disk.sha256"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, digest: str, size: int, annotations: dict | None = None) -> dict:
    desc = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        desc["annotations"] = annotations
    return desc


def encode(data: dict) -> bytes:
    """Canonical-enough JSON: stable key order, no whitespace, so equal content gets equal digests."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    raw: bytes
    data: dict

    @classmethod
    def parse(cls, raw: bytes, digest: str, content_type: str = "") -> "Manifest":
        try:
            data = json.loads(raw)
        except ValueError:
            raise BadImage(f"manifest {digest} is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadImage(f"manifest {digest} is not a JSON object")
        if data.get("schemaVersion") == 1:
            raise BadImage(f"manifest {digest} is Docker schema 1, which is not supported")
        media_type = data.get("mediaType") or content_type
        if not media_type and "manifests" in data:
            media_type = OCI_INDEX
        elif not media_type:
            media_type = OCI_MANIFEST
        if media_type not in INDEX_TYPES | IMAGE_TYPES:
            raise BadImage(f"manifest {digest} has unsupported media type {media_type!r}")
        return cls(digest, media_type, raw, data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def layers(self) -> list[dict]:
        return list(self.data.get("layers") or [])

    @property
    def annotations(self) -> dict:
        return dict(self.data.get("annotations") or {})

    def select(self, os: str = "linux", architecture: str = "amd64") -> dict:
        """The index entry for ``os/architecture``, or the only entry when there is just one."""
        entries = [m for m in self.data.get("manifests") or [] if m.get("mediaType") in IMAGE_TYPES | {None}]
        # Attestations and other non-platform entries are tagged unknown/unknown by buildkit.
        entries = [m for m in entries if (m.get("platform") or {}).get("os") != "unknown"]
        for entry in entries:
            platform = entry.get("platform") or {}
            if platform.get("os") == os and platform.get("architecture") == architecture:
                return entry
        if len(entries) == 1:
            return entries[0]
        found = ", ".join(
            f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
            for m in entries
        )
        raise BadImage(f"image index {self.digest} has no {os}/{architecture} entry (has: {found or 'none'})")
