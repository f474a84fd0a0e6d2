"""Image references: ``[registry/]repository[:tag][@sha256:digest]``."""

import ipaddress
import re
from dataclasses import dataclass, replace

from loco_lan.errors import LocoError

DEFAULT_REFERENCE = "ghcr.io/mroie/qemu-snapshots:win98-base"

_DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Reference":
        """Parse ``text`` the way docker does (a first component without ``.``/``:`` is a Docker Hub repo)."""
        rest, _, digest = text.strip().partition("@")
        if digest and not _DIGEST.fullmatch(digest):
            raise LocoError(f"bad image reference {text!r}: only sha256:<64 hex> digests are supported")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = _DOCKER_HUB, rest
        tag = None
        name, colon, maybe_tag = path.rpartition(":")
        if colon and "/" not in maybe_tag:
            path, tag = name, maybe_tag
            if not _TAG.fullmatch(tag):
                raise LocoError(f"bad image reference {text!r}: invalid tag {tag!r}")
        if registry == _DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _REPOSITORY.fullmatch(path):
            raise LocoError(f"bad image reference {text!r}: invalid repository name {path!r}")
        if tag is None and not digest:
            tag = "latest"
        return cls(registry, path, tag, digest or None)

    @property
    def api_host(self) -> str:
        """Host (and port) serving the distribution API for this registry."""
        return _DOCKER_HUB_API if self.registry == _DOCKER_HUB else self.registry

    @property
    def manifest_ref(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.api_host)

    def with_digest(self, digest: str) -> "Reference":
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and 127.0.0.0/8 or ::1, with or without a port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
