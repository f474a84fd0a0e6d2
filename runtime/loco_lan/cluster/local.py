"""Start, inspect and stop a local control plane made of the real binaries.

Everything listens on 127.0.0.1 only.  Each cluster has a state directory
holding its PKI, etcd data, logs, kubeconfigs, provisioned volumes and a
``cluster.json`` recording ports and process ids, so ``up`` is idempotent and a
second cluster (another name) runs beside the first on other ports.
"""

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from loco_lan.cluster import pki
from loco_lan.cluster.tools import Toolbox
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.netutil import LOOPBACK, bindable, free_port
from loco_lan.process import Started, start_time

HOST = LOOPBACK
PORT_NAMES = ("etcd", "etcd_peer", "apiserver", "kwok")
STORAGE_CLASS = "loco-hostpath"
# Volumes of this class are filesystems of the claim's size (tmpfs): they fill up like real disks.
SIZED_STORAGE_CLASS = "loco-sized"
PROVISIONER = "loco.lan/hostpath"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "loco-lan" / "clusters"


def write_kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loco", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user,
                   "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": "loco", "context": {"cluster": "loco", "user": user}}],
        "current-context": "loco",
    }
    atomic_write(path, yaml.safe_dump(config, sort_keys=False), mode=0o600)


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None


class LocalCluster:
    """One named local cluster.  ``up()`` starts what is missing, ``down()`` stops all."""

    def __init__(self, name: str = "local", state_root: Path | None = None, nodes: int = 3,
                 toolbox: Toolbox | None = None):
        self.name = name
        self.dir = Path(state_root or default_state_root()) / name
        self.nodes = nodes
        self.tools = toolbox or Toolbox()
        self.pki_dir = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.volumes = self.dir / "volumes"
        self.kubeconfig = self.dir / "kubeconfig"
        self.state_file = self.dir / "cluster.json"

    # -- state ---------------------------------------------------------
    def _load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, state: dict) -> None:
        atomic_write(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def status(self) -> dict:
        state = self._load()
        pids = state.get("pids", {})
        running = {name: _alive(started) for name, started in pids.items()}
        healthy = bool(pids) and all(running.values()) and self._apiserver_ready(state)
        return {
            "name": self.name,
            "state_dir": str(self.dir),
            "kubeconfig": str(self.kubeconfig),
            "server": state.get("server"),
            "components": running,
            "healthy": healthy,
        }

    # -- lifecycle -----------------------------------------------------
    def up(self, timeout: float = 90.0) -> dict:
        if self.status()["healthy"]:
            return self.status()
        self.down()
        for directory in (self.pki_dir, self.logs, self.volumes):
            directory.mkdir(parents=True, exist_ok=True)
        state = self._load()
        ports = self._ports(state.get("ports", {}))
        state = {"ports": ports, "server": f"https://{HOST}:{ports['apiserver']}", "pids": {}}
        self._save(state)
        self._write_credentials(state["server"])
        deadline = time.monotonic() + timeout
        try:
            for component in self._control_plane(ports)[:2]:
                self._start(component, state)
                if component.name == "etcd":
                    self._wait(lambda: self._etcd_ready(ports), "etcd", deadline)
            self._wait(lambda: self._apiserver_ready(state), "kube-apiserver", deadline)
            self._seed_api()
            for component in self._control_plane(ports)[2:]:
                self._start(component, state)
            self._wait(self._nodes_ready, f"{self.nodes} kwok nodes Ready", deadline)
        except BaseException:
            self.down()
            raise
        return self.status()

    def down(self, purge: bool = False) -> None:
        state = self._load()
        pids = state.get("pids", {})
        # Stop in reverse start order so nothing keeps retrying a dead dependency.
        for name in reversed(list(pids)):
            started = Started.load(pids[name])
            if started is not None:
                _terminate(started)
        if pids:
            state["pids"] = {}
            self._save(state)
        # The sized volumes' filesystems live in memory and go with the cluster (their PVs stay).
        for mount in _mounts_under(self.volumes):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        if purge and self.dir.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.dir)], check=True)

    # -- pieces --------------------------------------------------------
    def _ports(self, previous: dict) -> dict:
        ports = {}
        for name in PORT_NAMES:
            port = previous.get(name)
            ports[name] = port if port and bindable(port) else free_port()
        return ports

    def _write_credentials(self, server: str) -> None:
        ca = pki.CertificateAuthority(self.pki_dir)
        pki.service_account_keys(self.pki_dir)
        ca.issue("apiserver", "kube-apiserver", server_names=(HOST, "localhost", "kubernetes",
                                                             "kubernetes.default.svc", "10.96.0.1"))
        ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        ca.issue("kwok-serving", "kwok", server_names=(HOST, "localhost"))
        users = {
            "admin": ("loco-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
            # kwok plays every kubelet and the agent provisions volumes: both act cluster-wide.
            "kwok": ("loco-kwok", "system:masters"),
            "agent": ("loco-agent", "system:masters"),
        }
        for stem, (user, group) in users.items():
            pair = ca.issue(stem, user, group)
            path = self.kubeconfig if stem == "admin" else self.dir / f"{stem}.kubeconfig"
            write_kubeconfig(path, server, ca.pair.cert, pair, user)

    def _control_plane(self, ports: dict) -> list[Component]:
        p, t = self.pki_dir, self.tools
        kwok_assets = t.kwok_assets()
        return [
            Component("etcd", [
                t.binary("etcd"), "--name", self.name, "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", f"http://{HOST}:{ports['etcd']}",
                "--advertise-client-urls", f"http://{HOST}:{ports['etcd']}",
                "--listen-peer-urls", f"http://{HOST}:{ports['etcd_peer']}",
                "--initial-advertise-peer-urls", f"http://{HOST}:{ports['etcd_peer']}",
                "--initial-cluster", f"{self.name}=http://{HOST}:{ports['etcd_peer']}",
                "--quota-backend-bytes", str(2 << 30),
            ]),
            Component("kube-apiserver", [
                t.binary("kube-apiserver"),
                "--etcd-servers", f"http://{HOST}:{ports['etcd']}",
                "--bind-address", HOST, "--advertise-address", HOST,
                "--secure-port", str(ports["apiserver"]),
                "--tls-cert-file", str(p / "apiserver.crt"),
                "--tls-private-key-file", str(p / "apiserver.key"),
                "--client-ca-file", str(p / "ca.crt"),
                "--authorization-mode", "Node,RBAC",
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", str(p / "sa.pub"),
                "--service-account-signing-key-file", str(p / "sa.key"),
                "--service-cluster-ip-range", "10.96.0.0/16",
                "--kubelet-client-certificate", str(p / "apiserver-kubelet-client.crt"),
                "--kubelet-client-key", str(p / "apiserver-kubelet-client.key"),
                "--kubelet-preferred-address-types", "InternalIP",
                # The loopback address cannot be an Endpoints address; nothing in-cluster dials it anyway.
                "--endpoint-reconciler-type", "none",
                "--allow-privileged=true",
                "--profiling=false",
            ]),
            Component("kube-controller-manager", [
                t.binary("kube-controller-manager"),
                "--kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
                "--authentication-kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
                "--authorization-kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
                "--bind-address", HOST, "--secure-port", "0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                "--service-account-private-key-file", str(p / "sa.key"),
                "--root-ca-file", str(p / "ca.crt"),
                "--cluster-signing-cert-file", str(p / "ca.crt"),
                "--cluster-signing-key-file", str(p / "ca.key"),
                "--profiling=false",
            ]),
            Component("kube-scheduler", [
                t.binary("kube-scheduler"),
                "--kubeconfig", str(self.dir / "scheduler.kubeconfig"),
                "--authentication-kubeconfig", str(self.dir / "scheduler.kubeconfig"),
                "--authorization-kubeconfig", str(self.dir / "scheduler.kubeconfig"),
                "--bind-address", HOST, "--secure-port", "0",
                "--leader-elect=false",
                "--profiling=false",
            ]),
            Component("kwok", [
                t.binary("kwok"),
                "--kubeconfig", str(self.dir / "kwok.kubeconfig"),
                "--manage-nodes-with-annotation-selector", f"{KWOK_NODE_ANNOTATION}=fake",
                "--node-ip", HOST, "--node-port", str(ports["kwok"]),
                "--server-address", f"{HOST}:{ports['kwok']}",
                "--tls-cert-file", str(p / "kwok-serving.crt"),
                "--tls-private-key-file", str(p / "kwok-serving.key"),
                "--cidr", "10.244.0.0/16",
                "--node-lease-duration-seconds", "40",
                "--enable-crds", "Exec,PortForward,Logs",
                *[arg for stage in kwok_assets.stages for arg in ("--config", str(stage))],
            ], env=self._sandbox_env()),
            Component("agent", [
                sys.executable, "-m", "loco_lan.cluster.agent",
                "--kubeconfig", str(self.dir / "agent.kubeconfig"),
                "--state-dir", str(self.dir),
            ]),
        ]

    def _sandbox_env(self) -> dict[str, str]:
        """kwok runs exec'd commands through the pod sandbox shim (see sandbox.py)."""
        from loco_lan.cluster import sandbox

        shim_dir = sandbox.install_shims(self.dir / "shims")
        real_path = os.environ.get("PATH", os.defpath)
        return {**os.environ, "PATH": f"{shim_dir}:{real_path}", sandbox.REAL_PATH_ENV: real_path}

    def _start(self, component: Component, state: dict) -> None:
        log = open(self.logs / f"{component.name}.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            process = subprocess.Popen(
                component.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=component.env, start_new_session=True, cwd=self.dir,
            )
        state["pids"][component.name] = Started.of(process.pid).dump()
        self._save(state)

    def _wait(self, ready, what: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.3)
        raise LocoError(f"timed out waiting for {what}; logs in {self.logs}")

    def _check_alive(self) -> None:
        for name, started in self._load().get("pids", {}).items():
            if not _alive(started):
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-5:]
                raise LocoError(f"{name} exited during start-up: {' | '.join(tail)}")

    def _etcd_ready(self, ports: dict) -> bool:
        with urllib.request.urlopen(f"http://{HOST}:{ports['etcd']}/health", timeout=2) as response:
            return json.load(response).get("health") == "true"

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def _apiserver_ready(self, state: dict) -> bool:
        if not state.get("server"):
            return False
        try:
            with urllib.request.urlopen(f"{state['server']}/readyz", timeout=2,
                                        context=self._ssl_context()) as response:
                return response.status == 200
        except (OSError, ssl.SSLError):
            return False

    def api(self):
        from loco_lan import kube

        return kube.api_client(str(self.kubeconfig))

    def _seed_api(self) -> None:
        """What a fresh cluster needs before nodes and workloads: kwok's CRDs, nodes, storage."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        from loco_lan import kube

        api = self.api()
        for crd in self.tools.kwok_assets().crds:
            kube.apply(api, yaml.safe_load(crd.read_text()))
        # Bound when a pod first needs them, as local-path does: a ReadWriteOnce volume then lives
        # on that pod's node, and every later pod using it is scheduled there.
        for name, extra in ((STORAGE_CLASS, {"metadata": {"annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}}}),
                (SIZED_STORAGE_CLASS, {"parameters": {"filesystem": "tmpfs"}})):
            storage_class = {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, **extra.get("metadata", {})},
                "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": True, **{k: v for k, v in extra.items() if k != "metadata"},
            }
            try:
                kube.apply(api, storage_class)
            except ApiException as exc:  # a cluster made before: its class differs in immutable fields
                if exc.status != 422:
                    raise
                client.StorageV1Api(api).delete_storage_class(name)
                kube.apply(api, storage_class)
        for index in range(self.nodes):
            kube.apply(api, {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{index}",
                    "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{index}",
                               "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                },
            })

    def _nodes_ready(self) -> bool:
        from kubernetes import client

        nodes = client.CoreV1Api(self.api()).list_node().items
        ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True"
                                         for c in (n.status.conditions or []))]
        # Workloads can be created once the default service account exists.
        client.CoreV1Api(self.api()).read_namespaced_service_account("default", "default")
        return len(ready) >= self.nodes


def _mounts_under(directory: Path) -> list[str]:
    """Mount points below ``directory``, deepest first."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = f"{directory}/"
    points = [line.split()[1].encode().decode("unicode_escape") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _alive(stored) -> bool:
    started = Started.load(stored)
    return started is not None and started.alive()


def _terminate(started: Started, grace: float = 10.0) -> None:
    """SIGTERM the component's process group, then SIGKILL what is left after ``grace``; nothing
    when its pid now belongs to another process."""
    if not started.signal(signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and started.alive():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(started.pid, os.WNOHANG)
        time.sleep(0.1)
    if started.alive():
        started.signal(signal.SIGKILL)
    elif start_time(started.pid) is None:
        # The leader is gone and no process has its pid: whatever still holds that number as its
        # group is one of ours, left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, signal.SIGKILL)
