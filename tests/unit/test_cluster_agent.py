"""The node agent's pure parts: Secret and ConfigMap volumes as files, the port-forward
annotation, access modes."""

from datetime import UTC, datetime

import pytest
from kubernetes.client import (
    V1KeyToPath,
    V1ObjectMeta,
    V1PersistentVolumeClaimVolumeSource,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
    V1Volume,
)

from loco_lan.cluster.agent import VolumeRefused, check_attach, claim_users, port_forwards, volume_files
from loco_lan.errors import LocoError


def test_every_key_becomes_a_file():
    assert volume_files({"password": b"s3cret", "user": b"loco"}, None) == {"password": b"s3cret", "user": b"loco"}


def test_items_pick_keys_and_place_them():
    items = [V1KeyToPath(key="password", path="vnc/pass"), V1KeyToPath(key="missing", path="x")]
    assert volume_files({"password": b"s3cret", "user": b"loco"}, items) == {"vnc/pass": b"s3cret"}


# -- the port-forward annotation --------------------------------------------------


def test_a_port_forward_annotation_maps_pod_ports_to_local_addresses():
    assert port_forwards('{"5901": "127.0.0.1:15901"}') == {"5901": "127.0.0.1:15901"}
    assert port_forwards(None) == port_forwards("") == {}


@pytest.mark.parametrize("text", ["{5901: x}", "[]", '{"5901": "127.0.0.1"}', '{"vnc": "127.0.0.1:1"}',
                                  '{"5901": "127.0.0.1:99999"}', '{"5901": 15901}', '"x"'])
def test_a_malformed_port_forward_annotation_is_a_clear_error(text):
    with pytest.raises(LocoError):
        port_forwards(text)


# -- access modes, as attach and mount enforce them ------------------------------------


def pod(name: str, node: str, claim: str = "disk", age: int = 0):
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="lan", uid=f"uid-{name}",
                                       creation_timestamp=datetime(2026, 1, 1, 0, age, tzinfo=UTC)),
                 spec=V1PodSpec(node_name=node, containers=[], volumes=[V1Volume(
                     name="disk", persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(claim_name=claim))]),
                 status=V1PodStatus(phase="Running"))


def test_read_write_once_is_refused_on_a_second_node_and_allowed_on_the_first():
    first, same, other = pod("a", "node-0", age=0), pod("b", "node-0", age=1), pod("c", "node-1", age=2)
    users = claim_users([other, same, first])["lan/disk"]
    assert [p.metadata.name for p in users] == ["a", "b", "c"]
    check_attach(first, "pv-1", ["ReadWriteOnce"], users)
    check_attach(same, "pv-1", ["ReadWriteOnce"], users)
    with pytest.raises(VolumeRefused, match='Multi-Attach error for volume "pv-1".*pod\\(s\\) a, b on node node-0'):
        check_attach(other, "pv-1", ["ReadWriteOnce"], users)
    check_attach(other, "pv-1", ["ReadWriteMany"], users)
    check_attach(other, "pv-1", ["ReadOnlyMany"], users)


def test_read_write_once_pod_is_one_pod_only():
    first, second = pod("a", "node-0", age=0), pod("b", "node-0", age=1)
    users = claim_users([first, second])["lan/disk"]
    check_attach(first, "pv-1", ["ReadWriteOncePod"], users)
    with pytest.raises(VolumeRefused, match="ReadWriteOncePod and already used by pod a"):
        check_attach(second, "pv-1", ["ReadWriteOncePod"], users)
