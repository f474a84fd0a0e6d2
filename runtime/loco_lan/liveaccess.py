"""Live access for local use: supervised ``kubectl port-forward``s to every emulator and to the
streaming gateway.

Instance ``i`` gets its VNC port on ``vnc_base_port + i`` and its health port on
``health_base_port + i`` (127.0.0.1 by default); the gateway (the web client, the streams,
the focus API) is on ``web_port`` when the release runs one.  A detached supervisor keeps one
port-forward per port running, restarts any that exits (a pod restarted, a
connection dropped) and follows the StatefulSet when it is scaled.  ``start``
refuses ports already taken, is idempotent (a supervisor already running the
same configuration is kept) and returns once every forward listens.
"""

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.kube.portforward import ForwardSet, kubectl_port_forward
from loco_lan.netutil import bindable, ephemeral_range, wait_accepting
from loco_lan.process import Started

log = logging.getLogger("loco.live")
VNC_PORT, HEALTH_PORT, GATEWAY_PORT = 5901, 8080, 8443


@dataclass(frozen=True)
class LiveConfig:
    namespace: str
    release: str = "loco"
    kubeconfig: str | None = None
    context: str | None = None
    address: str = "127.0.0.1"
    vnc_base_port: int = 15901
    health_base_port: int = 18080
    web_port: int | None = 18443  # None: no forward to the gateway
    kubectl: str = "kubectl"

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def forwards(self, replicas: int, gateway: bool = False) -> list[tuple[str, int, int]]:
        """(pod, local port, remote port) for every emulator, VNC ones first, then the gateway."""
        pods = [f"{self.release}-emulator-{i}" for i in range(replicas)]
        forwards = [(pod, base + i, remote)
                    for base, remote in ((self.vnc_base_port, VNC_PORT), (self.health_base_port, HEALTH_PORT))
                    for i, pod in enumerate(pods)]
        if gateway and self.web_port:
            forwards.append((f"svc/{self.release}-streaming", self.web_port, GATEWAY_PORT))
        return forwards

    @property
    def web_url(self) -> str | None:
        return f"http://{self.address}:{self.web_port}/" if self.web_port else None


class LiveAccess:
    def __init__(self, config: LiveConfig, state_dir: Path):
        self.config = config
        self.state_file = Path(state_dir) / f"live-{config.namespace}-{config.release}.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def supervisor(self) -> Started | None:
        """The supervisor the state file names, if it still runs (not another process on its pid)."""
        started = Started.load(self.state().get("supervisor"))
        return started if started is not None and started.alive() else None

    def running(self) -> bool:
        return self.supervisor() is not None and self.state().get("key") == self.config.key

    def start(self, timeout: float = 60.0) -> bool:
        """Start the supervisor unless it already runs this configuration, then wait until
        every forward listens; returns whether it started."""
        config = self.config
        ports = self.ports()
        started = not self.running()
        if started:
            self.stop()
            busy = [port for port in ports if not bindable(port, config.address)]
            if busy:
                low, high = ephemeral_range()
                raise LocoError(
                    f"{config.address} port {', '.join(map(str, busy))} already in use, so live access cannot "
                    f"listen there: choose other base ports, outside {low}-{high} (the kernel hands those out "
                    "to outgoing connections)")
            self._spawn()
        supervisor = Started.load(self.state()["supervisor"])
        closed = wait_accepting(ports, config.address, timeout, alive=supervisor.alive)
        if closed:
            raise LocoError(
                f"live access does not listen on {config.address} port {', '.join(map(str, closed))} after "
                f"{timeout:g}s (are the emulator pods running?); its supervisor "
                f"{'keeps retrying' if supervisor.alive() else 'exited'}, its log {self.log_file} ends:\n"
                + tail(self.log_file))
        return started

    def ports(self) -> list[int]:
        """The local ports of the emulators there are now, VNC ones first, then the gateway's."""
        config = self.config
        api = kube.api_client(config.kubeconfig, config.context)
        forwards = config.forwards(replicas(client.AppsV1Api(api), config), has_gateway(client.CoreV1Api(api), config))
        return [local for _, local, _ in forwards]

    def gateway(self) -> bool:
        config = self.config
        return has_gateway(client.CoreV1Api(kube.api_client(config.kubeconfig, config.context)), config)

    @property
    def log_file(self) -> Path:
        return self.state_file.with_suffix(".log")

    def _spawn(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "loco_lan.liveaccess", "--config", json.dumps(asdict(self.config))],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        atomic_write(self.state_file, json.dumps({"supervisor": Started.of(process.pid).dump(), "key": self.config.key,
                                                  "config": asdict(self.config), "log": str(self.log_file)}))

    def stop(self) -> bool:
        """Stop the supervisor (its port-forwards with it); False when none runs. A pid now held by
        another process is left alone: only the state file goes."""
        supervisor = self.supervisor()
        if supervisor is None or not supervisor.signal(signal.SIGTERM):
            self.state_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + 10
        while supervisor.alive() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(supervisor.pid, os.WNOHANG)
            time.sleep(0.1)
        self.state_file.unlink(missing_ok=True)
        return True


def supervise(config: LiveConfig, poll: float = 2.0) -> None:
    """Keep one ``kubectl port-forward`` per forward alive until SIGTERM."""
    api = kube.api_client(config.kubeconfig, config.context)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    stopping = False

    def on_term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    forwards = ForwardSet(kubectl_port_forward(config.namespace, kubeconfig=config.kubeconfig,
                                               context=config.context, kubectl=config.kubectl,
                                               address=config.address), output=None)
    while not stopping:
        try:
            wanted = config.forwards(replicas(apps, config), has_gateway(core, config))
        except Exception as exc:  # the API may be briefly away; keep what runs
            log.warning("cannot read the StatefulSet: %s", exc)
            wanted = list(forwards.children)
        forwards.sync(wanted)
        time.sleep(poll)
    forwards.close()


def replicas(apps: client.AppsV1Api, config: LiveConfig) -> int:
    name = f"{config.release}-emulator"
    try:
        return apps.read_namespaced_stateful_set(name, config.namespace).spec.replicas or 0
    except ApiException as exc:
        if exc.status == 404:
            raise LocoError(f"StatefulSet {config.namespace}/{name} not found; is release "
                            f"{config.release!r} installed?") from exc
        raise


def has_gateway(core: client.CoreV1Api, config: LiveConfig) -> bool:
    """Whether the release runs the streaming gateway (its Service exists)."""
    try:
        core.read_namespaced_service(f"{config.release}-streaming", config.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def player_url(api: client.ApiClient, config: LiveConfig) -> str | None:
    """The gateway's local URL with the player token in its fragment (kept out of server logs and
    Referer headers), read from the Secret the gateway's pod mounts as its token; None without a
    gateway or a token."""
    if not config.web_port:
        return None
    try:
        deployment = client.AppsV1Api(api).read_namespaced_deployment(f"{config.release}-streaming", config.namespace)
        names = [v.secret.secret_name for v in deployment.spec.template.spec.volumes or []
                 if v.name == "token" and v.secret]
        if not names:
            return None
        secret = client.CoreV1Api(api).read_namespaced_secret(names[0], config.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    token = (secret.data or {}).get("token")
    return f"{config.web_url}#token={base64.b64decode(token).decode()}" if token else None


def write_player_url(api: client.ApiClient, config: LiveConfig, path: Path) -> bool:
    """Write the player's URL to ``path`` (mode 0600: it holds the token); whether it changed."""
    url = player_url(api, config)
    if url is None:
        return False
    if path.exists() and path.read_text().strip() == url:
        return False
    atomic_write(path, f"{url}\n".encode(), mode=0o600)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main() -> None:
    parser = argparse.ArgumentParser(description="supervise the port-forwards of one Loco LAN")
    parser.add_argument("--config", required=True, help="LiveConfig as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervise(LiveConfig(**json.loads(args.config)))


if __name__ == "__main__":
    main()
