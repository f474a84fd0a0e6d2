"""Real registries on loopback (Debian's docker-registry), with and without htpasswd auth."""

import itertools
import re

import pytest
from regkit import PASSWORD, USER, fast_client, make_qcow2

from loco_lan.localregistry import LocalRegistry, make_htpasswd
from loco_lan.oci import Client, Reference

_names = itertools.count()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    base = tmp_path_factory.mktemp("auth-registry")
    make_htpasswd(base / "htpasswd", USER, PASSWORD)
    with LocalRegistry(base / "state", htpasswd=base / "htpasswd") as running:
        yield running


@pytest.fixture
def client() -> Client:
    return fast_client()


@pytest.fixture
def ref(registry, request):
    """A fresh repository per call (blobs from other tests never make a push a no-op)."""

    def make(tag: str = "snap", host: str | None = None) -> Reference:
        name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
        return Reference.parse(f"{host or registry.host}/t{next(_names)}/{name}:{tag}")

    return make


@pytest.fixture
def qcow2(tmp_path):
    """Make a small real qcow2 under tmp_path/src (see regkit.make_qcow2)."""

    def make(name: str = "disk.qcow2", mib: int = 2, pattern: int | None = 0x5A):
        return make_qcow2(tmp_path / "src" / name, mib, pattern)

    return make
