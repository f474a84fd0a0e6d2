"""Real services for simulated pods: a pod annotated ``loco.lan/run-local: process`` whose
container runs the ``loco`` command (the chart's focus service and streaming gateway) gets that
command run here, as a kubelet would run the container, with what the cluster would give it:

- its ``env`` resolved (as for emulators), its service account's credentials as a kubeconfig
  (a TokenRequest token, so RBAC applies as in a cluster: ``KUBECONFIG``);
- container paths in its arguments (``--instances=/config/instances.json``) moved to the host
  directories behind the pod's volumes;
- its container ports on free loopback ports (``--port=8443`` becomes the local port,
  ``--host=0.0.0.0`` becomes 127.0.0.1), published as the pod's ports like the emulators';
- cluster DNS: this machine has none, so in-cluster addresses (``<svc>:<port>``,
  ``<svc>.<ns>.svc.cluster.local:<port>``, ``<pod>.<subdomain>...:<port>``) in its arguments
  and in the files of its ConfigMap/Secret volumes are replaced by the loopback addresses of the
  local processes behind them (:func:`address_book`); when one of those moves, the service is
  restarted with the new addresses, as a pod would follow DNS.
"""

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from loco_lan.cluster import localemu
from loco_lan.cluster.sandbox import Mount
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.netutil import free_port

RUN_VALUE = "process"
CLUSTER_DOMAIN = "svc.cluster.local"


# -- pure: names and addresses ------------------------------------------------------------------


def service_names(service: str, namespace: str) -> list[str]:
    """Every name a pod in ``namespace`` may reach a Service by."""
    return [f"{service}.{namespace}.{CLUSTER_DOMAIN}", f"{service}.{namespace}.svc", f"{service}.{namespace}", service]


def _target_port(port: dict, container_ports: dict[str, int]) -> int | None:
    target = port.get("targetPort", port["port"])
    return container_ports.get(target) if isinstance(target, str) else int(target)


def _selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def address_book(pods: Iterable[tuple[dict, Mapping[str, str]]], services: Iterable[dict]) -> dict[str, str]:
    """``"name:port" -> "127.0.0.1:local"`` for the locally run ``pods`` (manifest, and its
    forwards ``{containerPort: "127.0.0.1:local"}``): their own DNS names (hostname.subdomain)
    and those of every Service selecting them (port -> targetPort -> the local port)."""
    book: dict[str, str] = {}
    services = list(services)
    for pod, forwards in pods:
        meta, spec = pod["metadata"], pod["spec"]
        namespace = meta["namespace"]
        ports = [p for c in spec["containers"] for p in c.get("ports") or []]
        named = {p["name"]: p["containerPort"] for p in ports if p.get("name")}
        if spec.get("hostname") and spec.get("subdomain"):
            for base in service_names(spec["subdomain"], namespace)[:2]:
                for port, local in forwards.items():
                    book[f"{spec['hostname']}.{base}:{port}"] = local
        for service in services:
            if service["metadata"]["namespace"] != namespace:
                continue
            if not _selects(service["spec"].get("selector"), meta.get("labels") or {}):
                continue
            for port in service["spec"].get("ports") or []:
                local = forwards.get(str(_target_port(port, named)))
                if local:
                    for name in service_names(service["metadata"]["name"], namespace):
                        book.setdefault(f"{name}:{port['port']}", local)
    return book


def resolve(text: str, book: Mapping[str, str]) -> str:
    """``text`` with every in-cluster ``name:port`` of ``book`` replaced (whole names only)."""
    for name in sorted(book, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?!\d)", book[name], text)
    return text


def container_args(container: dict) -> list[str]:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if not words or words[0] != "loco":
        raise LocoError(f"container {container['name']}: the local agent runs only the loco command, not {words[:1]}")
    return words[1:]


def local_args(args: list[str], mounts: list[Mount], rootfs: Path, ports: Mapping[int, int]) -> list[str]:
    """The arguments as the process here takes them: container paths on the pod's volumes, the
    container port on its local port, a wildcard listen address on loopback."""
    out = []
    for arg in args:
        option, equals, value = arg.partition("=")
        if not equals:
            option, value = "", arg
        if option == "--host" and value in ("0.0.0.0", "::", ""):
            value = "127.0.0.1"
        elif option == "--port" and value.isdigit() and int(value) in ports:
            value = str(ports[int(value)])
        elif value.startswith("/"):
            value = str(localemu.host_path(value, mounts, rootfs)[0])
        out.append(f"{option}={value}" if equals else value)
    return out


# -- the process --------------------------------------------------------------------------------


class LocalService(localemu.Emulator):
    """One pod's ``loco`` container run here (restart, logs and readiness as for emulators)."""

    def __init__(self, pod: dict, container: dict, pod_dir: Path, env: dict[str, str], log_file: Path,
                 mounts: list[Mount], config_files: list[Path]):
        super().__init__(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", container["name"], pod_dir, env,
                         log_file)
        self.args = container_args(container)
        self.mounts = mounts
        self.container_ports = {p["containerPort"]: p.get("name") for p in container.get("ports") or []}
        self.ports = {port: free_port() for port in self.container_ports}
        self.probe = (container.get("readinessProbe") or {}).get("httpGet")
        # The ConfigMap/Secret files as the API server has them; what the process reads has the
        # in-cluster addresses resolved.
        self.originals = {path: path.read_bytes() for path in config_files}
        self.book: dict[str, str] = {}
        self.signature = ""

    def command(self) -> list[str]:
        resolved = [resolve(arg, self.book) for arg in self.args]
        args = local_args(resolved, self.mounts, self.dir / "rootfs", self.ports)
        return [sys.executable, "-m", "loco_lan.cli", *args]

    def environment(self) -> dict[str, str]:
        return {name: resolve(value, self.book) for name, value in self.env.items()}

    def probe_url(self) -> str:
        port = self.probe.get("port") if self.probe else None
        if isinstance(port, str):
            port = next((number for number, name in self.container_ports.items() if name == port), None)
        if port not in self.ports:
            port = next(iter(self.ports))
        return f"http://127.0.0.1:{self.ports[port]}{(self.probe or {}).get('path', '/')}"

    def local_ports(self) -> list[int]:
        return list(self.ports.values())

    def pick_ports(self) -> None:
        self.ports = {port: free_port() for port in self.ports}

    def describe(self) -> str:
        listening = ", ".join(f"{port} on 127.0.0.1:{local}" for port, local in self.ports.items())
        return f"the {self.container} container (loco {' '.join(self.args[:2])}), ports {listening}"

    def forwards(self) -> dict[str, str]:
        return {str(port): f"127.0.0.1:{local}" for port, local in self.ports.items()}

    def follow(self, book: Mapping[str, str]) -> bool:
        """Resolve against ``book`` (files rewritten now, arguments at the next start); restart the
        process when what it was given changes. Returns whether it did."""
        self.book = dict(book)
        digest = hashlib.sha256()
        for path, original in sorted(self.originals.items()):
            try:
                text = original.decode()
            except UnicodeDecodeError:
                continue
            resolved = resolve(text, self.book).encode()
            if not path.exists() or path.read_bytes() != resolved:
                atomic_write(path, resolved, mode=path.stat().st_mode & 0o777 if path.exists() else 0o644)
            digest.update(resolved)
        digest.update("\0".join(self.command()).encode())
        digest.update(repr(sorted(self.environment().items())).encode())
        changed, self.signature = bool(self.signature) and digest.hexdigest() != self.signature, digest.hexdigest()
        if changed:
            self.restart()
        return changed


def config_files(pod: dict, pod_dir: Path) -> list[Path]:
    """The files the agent wrote for the pod's ConfigMap and Secret volumes."""
    names = [v["name"] for v in pod["spec"].get("volumes") or [] if "configMap" in v or "secret" in v]
    return sorted(path for name in names for path in (pod_dir / "volumes" / name).rglob("*") if path.is_file())
