"""Real emulators for simulated pods: what a kubelet would run, as processes on this machine.

A kwok pod annotated ``loco.lan/run-local: emulator`` gets one ``python -m
loco_lan.emulator`` here, started with its container's environment resolved as
Kubernetes resolves it, its container paths moved to the host directories behind
the pod's volumes, VNC and health on free loopback ports (the agent publishes
them as the pod's ports 5901 and 8080 through kwok's PortForward), the guest channel
(COM1, pod port 4555) on a free loopback port too, and ``NETWORK_MODE=user`` unless the
``loco.lan/local-network-mode`` annotation picks another mode. With ``socket`` the LAN forms
as in a cluster: instance 0's hub listens on a loopback port kept for its StatefulSet (so a
restarted instance 0 comes back where its peers' uplinks look for it), and the peers'
``SOCKET_MASTER_HOST`` (an in-cluster name this machine cannot resolve) points there.

Each emulator runs in its own process group (QEMU is in it too), writes its
output to ``<container>.out`` in the pod's directory (copied in CRI format into
the ``<container>.log`` kwok serves to ``kubectl logs``), is restarted with a
capped backoff when it dies, and is stopped when its pod goes away or the agent
stops.  The functions above ``Emulator`` are pure and unit-tested.
"""

import contextlib
import ctypes
import logging
import os
import posixpath
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from loco_lan.cluster.sandbox import Mount
from loco_lan.emulator import config as emulator_config
from loco_lan.errors import LocoError
from loco_lan.focus.quota import CgroupFs
from loco_lan.netutil import bindable, free_port
from loco_lan.process import pid_alive

log = logging.getLogger("loco.agent")
RUN_ANNOTATION = "loco.lan/run-local"
NETWORK_ANNOTATION = "loco.lan/local-network-mode"
VNC_PORT, HEALTH_PORT, GUEST_CHANNEL_PORT = 5901, 8080, 4555
# Container paths the emulator reads from its environment.
PATH_VARIABLES = ("LOCO_DISK", "DISK", "LOCO_OVERLAY_DIR", "LOCO_VNC_PASSWORD_FILE")
# Relative to the pod directory (the process's working directory): an absolute path there
# can pass the 107 bytes a Unix socket path may have.
QMP_SOCKET = "qmp.sock"
PID_FILE = "emulator.pid"
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_RUN = 1.0, 30.0, 60.0
PROBE_TIMEOUT = 1.0  # seconds the readiness probe waits for /health
FAILURE_THRESHOLD = 3  # failed probes in a row that make a ready pod not ready (the kubelet's default)
STOP_GRACE = 5.0

# (kind, name, key) -> value, or None when the object or key does not exist.
Lookup = Callable[[str, str, str], str | None]


# -- pure: what the emulator is given ----------------------------------------
def expand(text: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined name is replaced, an undefined one stays as
    written, ``$$`` is a literal ``$`` (so ``$$(VAR)`` gives ``$(VAR)``)."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) >= 0:
            name = text[i + 2:end]
            out.append(defined.get(name, f"$({name})"))
            i = end + 1
        else:  # "$x" or an unclosed "$(": kept as written
            out.append(text[i:i + 2])
            i += 2
    return "".join(out)


def field_value(pod: dict, path: str) -> str:
    """The value of a downward-API ``fieldRef``, as the kubelet gives it."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        return (meta.get(keyed.group(1)) or {}).get(keyed.group(2), "")
    fields = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path not in fields:
        raise LocoError(f"fieldRef {path!r} is not supported by the local agent")
    return fields[path] or ""


def resolve_env(container: dict, pod: dict, lookup: Lookup) -> dict[str, str]:
    """The container's ``env`` in order: values with ``$(VAR)`` expanded against the variables
    before them, ``fieldRef``s, and Secret/ConfigMap keys (``envFrom`` is not read)."""
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value") or "", env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "secret" if "secretKeyRef" in source else "configmap"
            ref = source.get("secretKeyRef") or source["configMapKeyRef"]
            value = lookup(kind, ref["name"], ref["key"])
            if value is not None:
                env[name] = value
            elif not ref.get("optional"):
                raise LocoError(f"env {name}: {kind} {ref['name']!r} has no key {ref['key']!r}")
        else:
            raise LocoError(f"env {name}: {', '.join(source)} is not supported by the local agent")
    return env


def host_path(path: str, mounts: Iterable[Mount], rootfs: Path) -> tuple[Path, bool]:
    """Where a container path lives on this machine, and whether it is read-only there: under the
    volume mounted deepest above it, else in the pod's own root filesystem directory ``rootfs``."""
    path = posixpath.normpath(posixpath.join("/", path))
    best: Mount | None = None
    for mount in mounts:
        target = posixpath.normpath(mount.target)
        inside = path == target or path.startswith(target.rstrip("/") + "/")
        if inside and (best is None or len(target) > len(posixpath.normpath(best.target))):
            best = mount
    if best is None:
        return rootfs / path.lstrip("/"), False
    return Path(best.source) / posixpath.relpath(path, posixpath.normpath(best.target)), best.read_only


def emulator_container(pod: dict) -> dict:
    """The container named ``emulator``, else the pod's first."""
    containers = pod["spec"]["containers"]
    return next((c for c in containers if c["name"] == "emulator"), containers[0])


def emulator_env(pod: dict, mounts: list[Mount], pod_dir: Path, lookup: Lookup,
                 host_env: Mapping[str, str] = os.environ,
                 hub_port: Callable[[str], int] | None = None) -> dict[str, str]:
    """The environment of a pod's local emulator, ports aside (see ``with_ports``).

    ``hub_port(master)`` is the loopback port of the socket LAN whose instance 0 is ``master``
    (the peers' SOCKET_MASTER_HOST): the same for every instance of one StatefulSet."""
    meta = pod["metadata"]
    env = resolve_env(emulator_container(pod), pod, lookup)
    defaults = emulator_config.from_env({"NETWORK_MODE": "none"})  # the emulator's own defaults
    if "LOCO_DISK" not in env and "DISK" not in env:
        env["LOCO_DISK"] = str(defaults.disk)
    env.setdefault("LOCO_OVERLAY_DIR", str(defaults.overlay_dir))
    rootfs = pod_dir / "rootfs"
    read_only = {}
    for name in PATH_VARIABLES:
        if env.get(name):
            translated, read_only[name] = host_path(env[name], mounts, rootfs)
            env[name] = str(translated)
    # Root on this machine may write a read-only volume's files: tell the emulator to keep the
    # base image untouched (it boots an overlay), as it would find it in the pod.
    if read_only.get("LOCO_DISK" if "LOCO_DISK" in env else "DISK"):
        env["LOCO_DISK_READONLY"] = "true"
    mode = (meta.get("annotations") or {}).get(NETWORK_ANNOTATION, "user")
    lan = {}
    if mode == "socket":
        name = pod["spec"].get("hostname") or meta["name"]
        # A pod outside a StatefulSet is its own instance 0.
        master = env.get("SOCKET_MASTER_HOST") or emulator_config.master_from_hostname(name) or name
        port = hub_port(f"{meta.get('namespace', '')}/{master}") if hub_port else free_port()
        lan = {"SOCKET_MASTER_HOST": "127.0.0.1", "SOCKET_PORT": str(port), "LOCO_LAN_LISTEN": "127.0.0.1"}
    return {
        **env,
        **lan,
        "PATH": host_env.get("PATH", os.defpath),
        "HOSTNAME": pod["spec"].get("hostname") or meta["name"],
        "NETWORK_MODE": mode,
        "LOCO_QMP_SOCKET": QMP_SOCKET,
        "LOCO_VNC_LISTEN": "127.0.0.1",
        "LOCO_HEALTH_LISTEN": "127.0.0.1",
    }


def with_ports(env: Mapping[str, str], vnc: int, health: int, channel: int | None = None) -> dict[str, str]:
    if vnc <= 5900:
        raise ValueError(f"VNC port {vnc} is not above 5900")
    ports = {"LOCO_VNC_DISPLAY": str(vnc - 5900), "LOCO_HEALTH_PORT": str(health)}
    if channel:
        ports["LOCO_GUEST_CHANNEL"] = f"127.0.0.1:{channel}"
    return {**env, **ports}


def cri_lines(data: bytes, stamp: str) -> tuple[bytes, int]:
    """The complete lines of ``data`` in the CRI log format kwok parses (``<time> stdout F <line>``),
    and how many bytes of ``data`` they took (a trailing partial line waits for its end)."""
    end = data.rfind(b"\n") + 1
    prefix = f"{stamp} stdout F ".encode()
    return b"".join(prefix + line + b"\n" for line in data[:end].split(b"\n")[:-1]), end


def cri_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff(restarts: int) -> float:
    """Seconds before restart number ``restarts`` + 1: doubling from 1 s, at most 30 s."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** restarts)


# -- processes ---------------------------------------------------------------
def _free_ports() -> tuple[int, int, int]:
    """VNC (above 5900), health, guest channel."""
    vnc = free_port()
    while vnc <= 5900:
        vnc = free_port()
    return vnc, free_port(), free_port()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the agent dies, even by SIGKILL (the emulator then stops QEMU)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _in_cgroup(cgroup: Path | None):
    """What the child runs before exec: die with the agent, and join the pod's cgroup (so QEMU,
    started later, is in it from its first instruction)."""

    def prepare() -> None:
        _die_with_parent()
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text("0")

    return prepare


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


class LogFeed:
    """Copies a process's plain output file, line by line, into a CRI-format log file."""

    def __init__(self, plain: Path, cri: Path):
        self.plain, self.cri, self.offset = plain, cri, 0

    def pump(self) -> None:
        try:
            with open(self.plain, "rb") as source:
                source.seek(self.offset)
                data = source.read(1 << 20)
        except FileNotFoundError:
            return
        lines, used = cri_lines(data, cri_timestamp())
        if lines:
            with open(self.cri, "ab") as out:
                out.write(lines)
        self.offset += used


class Emulator:
    """One pod's emulator process."""

    def __init__(self, pod: str, container: str, pod_dir: Path, env: dict[str, str], log_file: Path,
                 cgroups: CgroupFs | None = None):
        self.pod, self.container, self.dir, self.env = pod, container, pod_dir, env
        self.cgroups = cgroups  # where the pod's cgroup (cpu controller) is made: its processes run there
        self.cgroup = cgroups.base / pod_dir.name if cgroups else None  # named by the pod's uid
        self.cpu_limit: int | None = None  # millicores last written to the cgroup
        self.log_file = log_file.with_suffix(".out")
        self.feed = LogFeed(self.log_file, log_file)
        self.ports = _free_ports()
        self.process: subprocess.Popen | None = None
        self.restarts = 0  # since it last ran HEALTHY_RUN seconds: sets the backoff
        self.exits = 0  # in all: the container's restartCount
        self.probe_failures = FAILURE_THRESHOLD  # not ready until /health first answers
        self.started = self.due = 0.0
        self.restarting = False  # stopped on purpose (restart): back at once, not counted as a crash

    # What differs between the kinds of local process (see localsvc.LocalService).
    def command(self) -> list[str]:
        return [sys.executable, "-m", "loco_lan.emulator"]

    def environment(self) -> dict[str, str]:
        return with_ports(self.env, *self.ports)

    def probe_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[1]}/health"

    def local_ports(self) -> list[int]:
        return list(self.ports)

    def pick_ports(self) -> None:
        self.ports = _free_ports()

    def describe(self) -> str:
        return (f"the emulator, VNC 127.0.0.1:{self.ports[0]}, health 127.0.0.1:{self.ports[1]}, "
                f"guest channel 127.0.0.1:{self.ports[2]}")

    def ready(self) -> bool:
        """Readiness as a kubelet's probe judges it: ready from the first 200 of the emulator's
        /health (QEMU up, VNC answering), not ready again after FAILURE_THRESHOLD failures in a
        row, or at once when the process is gone."""
        if self.process is None or self.process.poll() is not None:
            self.probe_failures = FAILURE_THRESHOLD
            return False
        try:
            with urllib.request.urlopen(self.probe_url(), timeout=PROBE_TIMEOUT) as reply:
                passed = reply.status == 200
        except (OSError, ValueError):  # refused, 503 (HTTPError is an OSError), garbled
            passed = False
        self.probe_failures = 0 if passed else self.probe_failures + 1
        return self.probe_failures < FAILURE_THRESHOLD

    def forwards(self) -> dict[str, str]:
        return {str(port): f"127.0.0.1:{local}"
                for port, local in zip((VNC_PORT, HEALTH_PORT, GUEST_CHANNEL_PORT), self.ports, strict=True)}

    def limit_cpu(self, millis: int | None) -> None:
        """The container's CPU limit on the pod's cgroup (None: no limit), as a CRI runtime sets it."""
        if self.cgroups is None or millis == self.cpu_limit and self.cgroup.exists():
            return
        self.cgroups.set_cpus(self.dir.name, None if millis is None else millis / 1000)
        self.cpu_limit = millis
        log.info("%s: CPU limit %s", self.pod, "none" if millis is None else f"{millis}m")

    def start(self) -> None:
        if not all(bindable(port) for port in self.local_ports()):
            self.pick_ports()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.cgroup is not None:
            self.cgroup.mkdir(exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"loco agent: starting {self.describe()}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.command(), env=self.environment(),
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_in_cgroup(self.cgroup))
        (self.dir / PID_FILE).write_text(f"{self.process.pid}\n")
        self.started = time.monotonic()
        log.info("started %s of %s (pid %d)", self.describe(), self.pod, self.process.pid)

    def tend(self, now: float) -> None:
        """Restart the emulator once its backoff has passed, if it died; pass its output on."""
        self.feed.pump()
        if self.process is None:
            if now >= self.due:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        _signal_group(self.process.pid, signal.SIGKILL)  # a QEMU left behind must not run twice
        if now - self.started >= HEALTHY_RUN:
            self.restarts = 0
        if self.restarting:
            delay, self.restarting = 0.0, False
        else:
            delay = backoff(self.restarts)
            self.restarts += 1
            self.exits += 1
        self.process, self.due = None, now + delay
        message = f"loco agent: {self.describe().split(',')[0]} exited with status {code}; restarting in {delay:g}s\n"
        with open(self.log_file, "a") as out:
            out.write(message)
        log.warning("%s: %s", self.pod, message.strip())

    def terminate(self) -> None:
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def restart(self) -> None:
        """Stop it to start it again at once (its inputs changed)."""
        if self.process is not None and self.process.poll() is None:
            self.restarting = True
            self.terminate()

    def wait(self, deadline: float) -> None:
        """Until the whole group is gone; SIGKILL what is left at ``deadline``."""
        if self.process is None:
            return
        pgid = self.process.pid
        while time.monotonic() < deadline and (self.process.poll() is None or _group_alive(pgid)):
            time.sleep(0.05)
        self.process.poll()
        if _group_alive(pgid):
            log.warning("the emulator of %s did not stop in time: killing it", self.pod)
            _signal_group(pgid, signal.SIGKILL)
            self.process.wait()
        self.feed.pump()
        (self.dir / PID_FILE).unlink(missing_ok=True)
        self.process = None
        if self.cgroup is not None:
            with contextlib.suppress(OSError):  # still holding a process: the next agent's reap finds it
                self.cgroup.rmdir()


class LocalEmulators:
    """The local processes of every annotated pod (emulators, and the services of localsvc), by
    pod uid: never two for one pod."""

    def __init__(self, pods_dir: Path):
        self.pods_dir = pods_dir
        self.emulators: dict[str, Emulator] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self.emulators

    def add(self, uid: str, pod: str, container: str, env: dict[str, str], log_file: Path,
            cgroups: CgroupFs | None = None) -> None:
        self.emulators[uid] = Emulator(pod, container, self.pods_dir / uid, env, log_file, cgroups)

    def put(self, uid: str, process: Emulator) -> None:
        self.emulators[uid] = process

    def get(self, uid: str) -> Emulator | None:
        return self.emulators.get(uid)

    def forwards(self, uid: str) -> dict[str, str]:
        emulator = self.emulators.get(uid)
        return emulator.forwards() if emulator else {}

    def tend(self) -> None:
        now = time.monotonic()
        for emulator in self.emulators.values():
            emulator.tend(now)

    def keep(self, uids: set[str]) -> None:
        """Stop the emulators of pods not in ``uids`` (deleted or being deleted)."""
        gone = [self.emulators.pop(uid) for uid in set(self.emulators) - uids]
        _stop(gone)
        for emulator in gone:
            log.info("stopped the emulator of %s", emulator.pod)

    def stop_all(self) -> None:
        _stop(list(self.emulators.values()))
        self.emulators.clear()

    def reap_orphans(self) -> None:
        """Stop emulators a previous agent left running (it was killed before it could)."""
        for pid_file in self.pods_dir.glob(f"*/{PID_FILE}"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text())
                # Still ours (not a reused pid): it runs in this pod's directory.
                if pid_alive(pid) and os.readlink(f"/proc/{pid}/cwd") == str(pid_file.parent):
                    log.warning("stopping emulator pid %d left by a previous agent", pid)
                    _signal_group(pid, signal.SIGTERM)
                    deadline = time.monotonic() + STOP_GRACE
                    while pid_alive(pid) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    _signal_group(pid, signal.SIGKILL)
            pid_file.unlink(missing_ok=True)


def _stop(emulators: list[Emulator]) -> None:
    """SIGTERM every group at once, then wait for them together."""
    for emulator in emulators:
        emulator.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for emulator in emulators:
        emulator.wait(deadline)
