"""The node agent's pure parts: Secret and ConfigMap volumes as files."""

from kubernetes.client import V1KeyToPath

from loco_lan.cluster.agent import volume_files


def test_every_key_becomes_a_file():
    assert volume_files({"password": b"s3cret", "user": b"loco"}, None) == {"password": b"s3cret", "user": b"loco"}


def test_items_pick_keys_and_place_them():
    items = [V1KeyToPath(key="password", path="vnc/pass"), V1KeyToPath(key="missing", path="x")]
    assert volume_files({"password": b"s3cret", "user": b"loco"}, items) == {"vnc/pass": b"s3cret"}
