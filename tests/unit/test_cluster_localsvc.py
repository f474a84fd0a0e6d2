"""What the local agent gives the loco services it runs (pure parts of localsvc)."""

from pathlib import Path

import pytest

from loco_lan.cluster.localsvc import address_book, container_args, local_args, resolve
from loco_lan.cluster.sandbox import Mount
from loco_lan.errors import LocoError


def pod(name, labels, ports, hostname=None, subdomain=None, namespace="loco"):
    spec = {"containers": [{"name": "c", "ports": ports}]}
    if hostname:
        spec.update(hostname=hostname, subdomain=subdomain)
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def service(name, selector, ports, namespace="loco"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"selector": selector, "ports": ports}}


def test_the_address_book_names_pods_and_the_services_that_select_them():
    emulator = pod("loco-emulator-0", {"c": "emulator"}, [{"name": "vnc", "containerPort": 5901}],
                   hostname="loco-emulator-0", subdomain="loco-emulator")
    focus = pod("loco-focus-abc", {"c": "focus"}, [{"name": "http", "containerPort": 8090}])
    book = address_book(
        [(emulator, {"5901": "127.0.0.1:40001"}), (focus, {"8090": "127.0.0.1:40002"})],
        [service("loco-focus", {"c": "focus"}, [{"port": 8090, "targetPort": "http"}]),
         service("other", {"c": "focus"}, [{"port": 80, "targetPort": 8090}], namespace="elsewhere")])
    assert book["loco-emulator-0.loco-emulator.loco.svc.cluster.local:5901"] == "127.0.0.1:40001"
    assert book["loco-emulator-0.loco-emulator.loco.svc:5901"] == "127.0.0.1:40001"
    assert book["loco-focus:8090"] == book["loco-focus.loco.svc.cluster.local:8090"] == "127.0.0.1:40002"
    assert not any(name.startswith("other") for name in book)


def test_resolving_replaces_whole_names_only():
    book = {"loco-focus:8090": "127.0.0.1:1", "loco-focus.loco.svc.cluster.local:8090": "127.0.0.1:1"}
    assert resolve("--focus-url=http://loco-focus:8090", book) == "--focus-url=http://127.0.0.1:1"
    assert resolve('{"u": "loco-focus.loco.svc.cluster.local:8090"}', book) == '{"u": "127.0.0.1:1"}'
    assert resolve("my-loco-focus:8090 loco-focus:80901", book) == "my-loco-focus:8090 loco-focus:80901"


def test_arguments_move_to_the_pods_volumes_ports_and_loopback():
    mounts = [Mount(source="/state/pod/volumes/config", target="/config", read_only=True)]
    args = local_args(["stream", "serve", "--instances=/config/instances.json", "--host=0.0.0.0", "--port=8443",
                       "--web-root", "/opt/web"], mounts, Path("/state/pod/rootfs"), {8443: 41000})
    assert args == ["stream", "serve", "--instances=/state/pod/volumes/config/instances.json", "--host=127.0.0.1",
                    "--port=41000", "--web-root", "/state/pod/rootfs/opt/web"]


def test_only_the_loco_command_is_run():
    assert container_args({"name": "c", "args": ["loco", "focus", "serve"]}) == ["focus", "serve"]
    with pytest.raises(LocoError, match="runs only the loco command, not \\['nginx'\\]"):
        container_args({"name": "c", "command": ["nginx"]})
