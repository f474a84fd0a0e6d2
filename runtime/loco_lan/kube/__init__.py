"""The one Kubernetes access layer of loco.lan.

Connection (kubeconfig, context or in-cluster), server-side apply of any
object, and the small waits and reads the rest of the project needs.  Modules,
CLIs and services all come through here.
"""

import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.stream import stream as ws_stream
from websocket import ABNF

from loco_lan.errors import LocoError

FIELD_MANAGER = "loco-lan"
STDIN_CHANNEL = b"\x00"


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for ``kubeconfig``/``context``, ``$KUBECONFIG``, or the in-cluster service account."""
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return config.new_client_from_config(config_file=kubeconfig, context=context)
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except (config.ConfigException, OSError) as exc:
        raise LocoError(f"cannot load Kubernetes credentials ({kubeconfig or 'default'}): {exc}") from exc


@functools.lru_cache(maxsize=8)
def _dynamic(api: client.ApiClient) -> DynamicClient:
    return DynamicClient(api)


def resource(api: client.ApiClient, api_version: str, kind: str):
    try:
        return _dynamic(api).resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        # A CRD applied a moment ago is not in the cached discovery yet.
        _dynamic(api).resources.invalidate_cache()
        return _dynamic(api).resources.get(api_version=api_version, kind=kind)


def apply(api: client.ApiClient, obj: dict, namespace: str | None = None) -> dict:
    """Server-side apply ``obj`` (created or updated; our field manager owns what it sets)."""
    meta = obj["metadata"]
    res = resource(api, obj["apiVersion"], obj["kind"])
    namespace = meta.get("namespace", namespace) if res.namespaced else None
    result = res.server_side_apply(
        body=obj, name=meta["name"], namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True
    )
    return result.to_dict()


def pod_is_ready(pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
    )


def pod_events(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    """The pod's events, oldest first, as ``Reason: message`` lines."""
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}"
    ).items
    events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [f"{e.reason}: {e.message}" for e in events]


def wait_pods_ready(api: client.ApiClient, namespace: str, label_selector: str, count: int,
                    timeout: float) -> list:
    """Wait until ``count`` pods matching the selector are Running and Ready.

    Between two looks it watches the pods, so it answers as soon as one changes.
    On timeout the error names every pod that is not ready with its phase and events.
    """
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        listing = core.list_namespaced_pod(namespace, label_selector=label_selector)
        pods = listing.items
        ready = [p for p in pods if pod_is_ready(p) and not p.metadata.deletion_timestamp]
        if len(ready) >= count:
            return sorted(ready, key=lambda p: p.metadata.name)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        _wait_for_a_change(core, namespace, label_selector, listing.metadata.resource_version, remaining)
    lines = [f"{len(ready)}/{count} pods ready in {namespace} ({label_selector}) after {timeout:.0f}s"]
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        if pod in ready:
            continue
        events = "; ".join(pod_events(api, namespace, pod.metadata.name)[-3:]) or "no events"
        lines.append(f"{pod.metadata.name}: {pod.status.phase} ({events})")
    raise LocoError(" | ".join(lines))


def _wait_for_a_change(core: client.CoreV1Api, namespace: str, label_selector: str, resource_version: str,
                       most: float) -> None:
    """Return at the first change to the selected pods after ``resource_version``, or after ``most``
    seconds (at most 10, so a watch the server dropped quietly costs little)."""
    seconds = max(1, int(min(most, 10)))
    events = watch.Watch().stream(core.list_namespaced_pod, namespace, label_selector=label_selector,
                                  resource_version=resource_version, timeout_seconds=seconds,
                                  _request_timeout=seconds + 5)
    try:
        next(events, None)
    except (ApiException, OSError, urllib3.exceptions.HTTPError):  # 410 Gone, a dropped connection...
        time.sleep(min(most, 1))  # ...the caller lists afresh
    finally:
        events.close()


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def exec_command(api: client.ApiClient, namespace: str, pod: str, argv: list[str],
                 container: str | None = None, stdin: Iterable[bytes] | bytes | None = None,
                 timeout: float = 300.0) -> ExecResult:
    """Run ``argv`` in a pod's container, feeding ``stdin`` (bytes or chunks) and closing it at the end.

    Stdout and stderr are collected whole: use it for commands with small output.
    """
    ws = ws_stream(
        client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, command=argv,
        container=container, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
        _preload_content=False, binary=True,
    )
    deadline = time.monotonic() + timeout
    stdout, stderr = bytearray(), bytearray()

    def drain(wait: float = 0) -> None:
        ws.update(timeout=wait)
        stdout.extend(ws.read_stdout() if ws.peek_stdout() else b"")
        stderr.extend(ws.read_stderr() if ws.peek_stderr() else b"")

    try:
        if stdin is not None:
            for chunk in [stdin] if isinstance(stdin, bytes) else stdin:
                ws.sock.send_frame(StdinFrame(STDIN_CHANNEL + chunk))
                drain()
            ws.close_channel(0)
        while ws.is_open():
            if time.monotonic() > deadline:
                raise LocoError(f"command {argv[0]!r} in pod {namespace}/{pod} timed out after {timeout:.0f}s")
            drain(wait=1)
        drain()
        return ExecResult(_exit_code(ws.read_channel(3)), bytes(stdout), bytes(stderr))
    finally:
        ws.close()


class StdinFrame(ABNF):
    """A binary frame of exec stdin, masked with numpy.  websocket-client masks in pure
    Python, which cost two thirds of the CPU of a disk upload (about 8 ms per MiB)."""

    def __init__(self, payload: bytes):
        super().__init__(fin=1, opcode=ABNF.OPCODE_BINARY, data=payload)

    def _get_masked(self, mask_key: bytes) -> bytes:
        return mask_key + xor_mask(mask_key, self.data)


def xor_mask(key: bytes, data: bytes) -> bytes:
    """RFC 6455 masking: byte ``i`` XOR ``key[i % 4]``."""
    out = np.frombuffer(data, dtype=np.uint8).copy()
    whole = len(out) // 4 * 4
    out[:whole].view(np.uint32)[:] ^= np.frombuffer(key, dtype=np.uint32)[0]
    out[whole:] ^= np.frombuffer(key, dtype=np.uint8)[: len(out) - whole]
    return out.tobytes()


def _exit_code(status_json: bytes | str) -> int:
    """Exit code from the exec error channel's Status (kubelets send an ExitCode cause;
    kwok only says ``exit status N`` in the message)."""
    status = yaml.safe_load(status_json or "{}") or {}
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    found = re.search(r"exit status (\d+)", status.get("message", ""))
    if found:
        return int(found.group(1))
    raise LocoError(f"exec failed: {status.get('message') or status_json!r}")
