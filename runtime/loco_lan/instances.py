"""``config/instances.json`` (and its companions) from the live cluster.

One entry per ordinal of the ``<release>-emulator`` StatefulSet, in ordinal
order, with readiness from the pods.  URLs name the in-cluster addresses
unless templates say otherwise (public hosts, or the local ports of a
port-forward).  Files are written atomically and only when their content
changes; ``active.json`` and ``hotkeys.json`` are created when missing and
never overwritten, so a user's edits survive.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube, schemas
from loco_lan.errors import LocoError
from loco_lan.focus.state import saved_state
from loco_lan.fsutil import atomic_write

ERROR_REASONS = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                 "CreateContainerError", "InvalidImageName", "RunContainerError"}
HOTKEY_SLOTS = 9


@dataclass
class UrlTemplates:
    """str.format templates; fields: index, number, id, pod, host, service, namespace, release,
    vnc_port, health_port (the base ports plus the index when set, else 5901 and 8080)."""

    stream: str = "http://{release}-streaming.{namespace}.svc.cluster.local:8443/stream/{id}"
    vnc: str = "{host}:{vnc_port}"
    health: str = "http://{host}:{health_port}"
    name: str = "Loco {number}"
    description: str = "Windows 98 guest {number} ({pod})"
    vnc_base_port: int | None = None
    health_base_port: int | None = None


def pod_status(pod) -> tuple[bool, str]:
    """(ready, status) of an emulator pod, or of a missing one when ``pod`` is None."""
    if pod is None or pod.metadata.deletion_timestamp:
        return False, "booting"
    waiting = [s.state.waiting.reason for s in pod.status.container_statuses or []
               if s.state and s.state.waiting and s.state.waiting.reason]
    if pod.status.phase == "Failed" or ERROR_REASONS.intersection(waiting):
        return False, "error"
    if kube.pod_is_ready(pod):
        return True, "ready"
    return False, "booting"


def collect(api: client.ApiClient, namespace: str, release: str, urls: UrlTemplates | None = None) -> list[dict]:
    urls = urls or UrlTemplates()
    name = f"{release}-emulator"
    try:
        sts = client.AppsV1Api(api).read_namespaced_stateful_set(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise LocoError(f"StatefulSet {namespace}/{name} not found; is release {release!r} installed?") from exc
        raise kube.api_error(exc, f"reading StatefulSet {namespace}/{name}") from None
    service = sts.spec.service_name or name
    pods = {p.metadata.name: p for p in client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/component=emulator,app.kubernetes.io/instance={release}").items}
    entries = []
    for index in range(sts.spec.replicas or 0):
        pod_name = f"{name}-{index}"
        pod = pods.get(pod_name)
        ready, status = pod_status(pod)
        fields = {
            "index": index, "number": index + 1, "id": f"instance-{index}", "pod": pod_name,
            "host": f"{pod_name}.{service}.{namespace}.svc.cluster.local", "service": service,
            "namespace": namespace, "release": release,
            "vnc_port": 5901 if urls.vnc_base_port is None else urls.vnc_base_port + index,
            "health_port": 8080 if urls.health_base_port is None else urls.health_base_port + index,
        }
        entries.append({
            "id": fields["id"],
            "name": urls.name.format(**fields),
            "description": urls.description.format(**fields),
            "streamUrl": urls.stream.format(**fields),
            "vncUrl": urls.vnc.format(**fields),
            "healthUrl": urls.health.format(**fields),
            "provisioned": pod is not None,
            "ready": ready,
            "status": status,
        })
    validate(entries)
    return entries


def validate(entries: list[dict]) -> None:
    schemas.validate(entries, "instances", "instances.json would be invalid")


def render(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def hotkeys_for(entries: list[dict]) -> dict:
    return {
        "focus": {f"Ctrl+{i + 1}": entry["id"] for i, entry in enumerate(entries[:HOTKEY_SLOTS])},
        "zoom": {"Ctrl=": "zoom-in", "Ctrl-": "zoom-out"},
        "switch": {"Tab": "next-instance"},
        "vr": schemas.vr_defaults(),
    }


@dataclass
class WriteResult:
    changed: bool
    before: str
    after: str
    created: list[str] = field(default_factory=list)


def write_config(config_dir: Path, entries: list[dict], check_mode: bool = False) -> WriteResult:
    """Write instances.json when it changes; create active.json and hotkeys.json when missing."""
    config_dir = Path(config_dir)
    target = config_dir / "instances.json"
    before = target.read_text() if target.exists() else ""
    after = render(entries)
    created = []
    companions = {"active.json": saved_state(), "hotkeys.json": hotkeys_for(entries)}
    for name, content in companions.items():
        if not (config_dir / name).exists():
            created.append(name)
            if not check_mode:
                atomic_write(config_dir / name, render(content))
    if after != before and not check_mode:
        atomic_write(target, after)
    return WriteResult(after != before or bool(created), before, after, created)
