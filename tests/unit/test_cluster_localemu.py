"""The local emulators' pure parts: env as Kubernetes resolves it, container paths on the host,
readiness as a kubelet's probe judges it."""

import http.server
import threading
from pathlib import Path

import pytest

from loco_lan.cluster.localemu import (
    FAILURE_THRESHOLD,
    Emulator,
    LogFeed,
    backoff,
    cri_lines,
    emulator_env,
    expand,
    field_value,
    host_path,
    resolve_env,
    with_ports,
)
from loco_lan.cluster.sandbox import Mount
from loco_lan.errors import LocoError

POD = {
    "metadata": {"name": "loco-emulator-2", "namespace": "lan", "uid": "u-1",
                 "labels": {"apps.kubernetes.io/pod-index": "2"}, "annotations": {"a": "b"}},
    "spec": {"nodeName": "kwok-node-1", "containers": [
        {"name": "sidecar"},
        {"name": "emulator", "env": [
            {"name": "POD_INDEX",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
            {"name": "INSTANCE_ID", "value": "instance-$(POD_INDEX)"},
            {"name": "LOCO_DISK", "value": "/images/win98.qcow2"},
            {"name": "DISK", "value": "/images/win98.qcow2"},
            {"name": "LOCO_OVERLAY_DIR", "value": "/overlay"},
            {"name": "QEMU_MEMORY", "value": "32"},
            {"name": "NETWORK_MODE", "value": "socket"},
            {"name": "LOCO_QMP_SOCKET", "value": "/run/loco/x.qmp"},
        ]},
    ]},
    "status": {"podIP": "10.244.0.7"},
}
MOUNTS = [
    Mount("/pv/disk", "/images", read_only=True),
    Mount("/pods/u-1/volumes/overlay", "/overlay"),
    Mount("/pods/u-1/volumes/run", "/run/loco"),
]


def no_objects(kind, name, key):
    return None


@pytest.mark.parametrize(("text", "expected"), [
    ("instance-$(I)", "instance-3"),
    ("$(I)$(I)", "33"),
    ("$(UNSET)", "$(UNSET)"),
    ("$$(I)", "$(I)"),
    ("$$", "$"),
    ("$$$(I)", "$3"),
    ("cost $5", "cost $5"),
    ("tail $", "tail $"),
    ("open $(I", "open $(I"),
    ("$()", "$()"),
    ("", ""),
])
def test_expansion_follows_kubernetes(text, expected):
    assert expand(text, {"I": "3"}) == expected


def test_field_refs():
    assert field_value(POD, "metadata.name") == "loco-emulator-2"
    assert field_value(POD, "metadata.namespace") == "lan"
    assert field_value(POD, "metadata.labels['apps.kubernetes.io/pod-index']") == "2"
    assert field_value(POD, "metadata.labels['missing']") == ""
    assert field_value(POD, "metadata.annotations['a']") == "b"
    assert field_value(POD, "spec.nodeName") == "kwok-node-1"
    assert field_value(POD, "status.podIP") == "10.244.0.7"
    with pytest.raises(LocoError, match="fieldRef 'status.phase' is not supported"):
        field_value(POD, "status.phase")


def test_env_in_order_with_expansion_against_earlier_variables_only():
    container = {"env": [
        {"name": "A", "value": "$(B)-x"},  # B is defined after A: stays as written
        {"name": "B", "value": "b"},
        {"name": "C", "value": "$(A)/$(B)"},
        {"name": "EMPTY"},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "N2", "value": "$(NAME)"},
    ]}
    assert resolve_env(container, POD, no_objects) == {
        "A": "$(B)-x", "B": "b", "C": "$(B)-x/b", "EMPTY": "", "NAME": "loco-emulator-2", "N2": "loco-emulator-2"}


def test_env_from_secrets_and_config_maps():
    objects = {("secret", "vnc", "password"): "hunter2", ("configmap", "settings", "mode"): "user"}
    container = {"env": [
        {"name": "VNC_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "vnc", "key": "password"}}},
        {"name": "NETWORK_MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
    ]}
    env = resolve_env(container, POD, lambda kind, name, key: objects.get((kind, name, key)))
    assert env == {"VNC_PASSWORD": "hunter2", "NETWORK_MODE": "user"}
    missing = {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}
    with pytest.raises(LocoError, match="env P: secret 'gone' has no key 'k'"):
        resolve_env(missing, POD, no_objects)
    resource = {"env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}
    with pytest.raises(LocoError, match="env CPU: resourceFieldRef is not supported"):
        resolve_env(resource, POD, no_objects)


@pytest.mark.parametrize(("path", "expected"), [
    ("/images/win98.qcow2", ("/pv/disk/win98.qcow2", True)),
    ("/images", ("/pv/disk", True)),
    ("/images/sub/../a.qcow2", ("/pv/disk/a.qcow2", True)),
    ("/imagesX/a", ("/pods/u-1/rootfs/imagesX/a", False)),
    ("/run/loco/s.qmp", ("/pods/u-1/volumes/run/s.qmp", False)),
    ("/run/other", ("/pods/u-1/rootfs/run/other", False)),
    ("/", ("/pods/u-1/rootfs", False)),
    ("/../../etc/passwd", ("/pods/u-1/rootfs/etc/passwd", False)),
    ("relative/x", ("/pods/u-1/rootfs/relative/x", False)),
])
def test_container_paths_land_under_the_volume_mounted_deepest(path, expected):
    found, read_only = host_path(path, MOUNTS, Path("/pods/u-1/rootfs"))
    assert (str(found), read_only) == expected


def test_nested_mounts_pick_the_deepest():
    mounts = [Mount("/a", "/data"), Mount("/b", "/data/inner", read_only=True)]
    assert host_path("/data/inner/f", mounts, Path("/r")) == (Path("/b/f"), True)
    assert host_path("/data/f", mounts, Path("/r")) == (Path("/a/f"), False)


def test_emulator_env_as_the_chart_sets_it():
    asked = []
    env = emulator_env(POD, MOUNTS, Path("/pods/u-1"), no_objects, host_env={"PATH": "/venv/bin:/usr/bin"},
                       hub_port=lambda master: asked.append(master) or 40444)
    assert env["INSTANCE_ID"] == "instance-2"
    assert env["LOCO_DISK"] == env["DISK"] == "/pv/disk/win98.qcow2"
    assert env["LOCO_DISK_READONLY"] == "true"  # the disk's volume is mounted read-only
    assert env["LOCO_OVERLAY_DIR"] == "/pods/u-1/volumes/overlay"
    assert env["LOCO_QMP_SOCKET"] == "qmp.sock"  # relative to the pod directory, the working directory
    assert env["NETWORK_MODE"] == "user" and not asked  # unless annotated: see the socket test below
    assert env["LOCO_VNC_LISTEN"] == env["LOCO_HEALTH_LISTEN"] == "127.0.0.1"
    assert env["HOSTNAME"] == "loco-emulator-2"
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["QEMU_MEMORY"] == "32"


def test_a_local_socket_lan_joins_instance_0s_hub_over_loopback():
    pod = {**POD, "metadata": {**POD["metadata"], "annotations": {"loco.lan/local-network-mode": "socket"}}}
    asked = []
    env = emulator_env(pod, MOUNTS, Path("/pods/u-1"), no_objects, host_env={},
                       hub_port=lambda master: asked.append(master) or 40444)
    assert env["NETWORK_MODE"] == "socket"
    lan = (env["SOCKET_MASTER_HOST"], env["SOCKET_PORT"], env["LOCO_LAN_LISTEN"])
    assert lan == ("127.0.0.1", "40444", "127.0.0.1")
    assert asked == ["lan/loco-emulator-0.loco-emulator"]  # instance 0 of its StatefulSet, by the pod name


def test_emulator_env_defaults_stay_inside_the_pod():
    pod = {"metadata": {"name": "p", "annotations": {"loco.lan/local-network-mode": "none"}},
           "spec": {"containers": [{"name": "main", "env": [{"name": "VNC_PASSWORD", "value": "pw"}]}]}}
    env = emulator_env(pod, [], Path("/pods/u"), no_objects, host_env={})
    assert env["LOCO_DISK"] == "/pods/u/rootfs/images/win98.qcow2"
    assert env["LOCO_OVERLAY_DIR"].startswith("/pods/u/rootfs/")
    assert "LOCO_DISK_READONLY" not in env
    assert env["NETWORK_MODE"] == "none"
    assert env["VNC_PASSWORD"] == "pw"


def test_secret_password_file_is_translated():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "emulator", "env": [
        {"name": "LOCO_VNC_PASSWORD_FILE", "value": "/secrets/vnc/password"}]}]}}
    env = emulator_env(pod, [Mount("/pods/u/volumes/vnc", "/secrets/vnc", True)], Path("/pods/u"), no_objects)
    assert env["LOCO_VNC_PASSWORD_FILE"] == "/pods/u/volumes/vnc/password"


def test_ports_and_backoff():
    env = with_ports({"A": "1"}, 35901, 38080)
    assert env == {"A": "1", "LOCO_VNC_DISPLAY": "30001", "LOCO_HEALTH_PORT": "38080"}
    assert with_ports({}, 35901, 38080, 34555)["LOCO_GUEST_CHANNEL"] == "127.0.0.1:34555"
    with pytest.raises(ValueError):
        with_ports({}, 5900, 1)
    assert [backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_output_becomes_cri_log_lines_once_complete():
    assert cri_lines(b"one\ntwo\nthr", "T") == (b"T stdout F one\nT stdout F two\n", 8)
    assert cri_lines(b"partial", "T") == (b"", 0)
    assert cri_lines(b"\n", "T") == (b"T stdout F \n", 1)


def test_log_feed_copies_new_complete_lines_only(tmp_path):
    plain, cri = tmp_path / "emulator.out", tmp_path / "emulator.log"
    feed = LogFeed(plain, cri)
    feed.pump()  # nothing written yet
    assert not cri.exists()
    plain.write_bytes(b"starting\nhalf")
    feed.pump()
    plain.write_bytes(b"starting\nhalf a line\n")
    feed.pump()
    feed.pump()
    lines = cri.read_text().splitlines()
    assert [line.split(" ", 3)[1:] for line in lines] == [["stdout", "F", "starting"], ["stdout", "F", "half a line"]]
    assert lines[0].split()[0].endswith("Z")


def test_readiness_follows_the_probe_with_the_kubelets_failure_threshold(tmp_path):
    answers = iter([503, 200, 503, 503, 200] + [503] * FAILURE_THRESHOLD)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(next(answers))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class Running:
        def poll(self):
            return None

    emulator = Emulator("pod", "emulator", tmp_path, {}, tmp_path / "emulator.log")
    emulator.ports = (0, server.server_address[1])
    emulator.process = Running()
    seen = [emulator.ready() for _ in range(5 + FAILURE_THRESHOLD)]
    server.shutdown()
    # not ready before the first 200; one or two failures do not flip it; three in a row do
    assert seen == [False, True, True, True, True] + [True] * (FAILURE_THRESHOLD - 1) + [False]
    emulator.process = None
    assert emulator.ready() is False
