"""Fixtures of the network check tests (the LAN builder is in netnslan.py)."""

import subprocess

import pytest
from netnslan import NetnsLan


@pytest.fixture
def netns_lan():
    """Build a LAN of namespaces: ``netns_lan("a", "b", "c")``; all of them are deleted afterwards."""
    lans = []

    def build(*names: str) -> NetnsLan:
        lan = NetnsLan(names)
        lans.append(lan)
        try:
            return lan.up()
        except subprocess.CalledProcessError as exc:
            if not lan.created:  # the very first `ip netns add` was refused
                pytest.skip(f"cannot create network namespaces here: {exc.stderr.decode().strip()}")
            raise

    yield build
    for lan in lans:
        lan.down()
