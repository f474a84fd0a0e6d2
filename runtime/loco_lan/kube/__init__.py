"""The one Kubernetes access layer of loco.lan.

Connection (kubeconfig, context or in-cluster), server-side apply of any
object, and the small waits and reads the rest of the project needs.  Modules,
CLIs and services all come through here.

Every call has a timeout (a stalled API server fails the call instead of hanging
the play) and idempotent ones are retried a few times; a failed call becomes
one :class:`KubeApiError` line: what failed, on which object, and what to do.
"""

import contextlib
import functools
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import urllib3
import websocket
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.stream import stream as ws_stream
from kubernetes.stream import ws_client
from websocket import ABNF, WebSocketException

from loco_lan.errors import LocoError

FIELD_MANAGER = "loco-lan"
STDIN_CHANNEL = b"\x00"

# Seconds a call may wait for the API server: to connect, and for each read. LOCO_KUBE_TIMEOUT
# shortens (or lengthens) the read for tests and slow links. Watches and long waits set their own.
READ_TIMEOUT = float(os.environ.get("LOCO_KUBE_TIMEOUT", "30"))
CONNECT_TIMEOUT = min(10.0, READ_TIMEOUT)
# Idempotent calls (GET, PUT, DELETE) retried on a dropped connection, a timeout or an overloaded
# server; creates and patches are not (the first may have been applied).
RETRIES = urllib3.Retry(total=3, connect=3, read=2, status=3, backoff_factor=0.5,
                        status_forcelist=(429, 502, 503, 504), raise_on_status=False)

# What a failed API call raises below the client library: turned into KubeApiError by api_error.
API_FAILURES = (ApiException, urllib3.exceptions.HTTPError, WebSocketException, TimeoutError, ConnectionError)

HINTS = {
    400: "the request was malformed: check the values given",
    401: "the credentials were refused: check the kubeconfig, its context or the service account token",
    403: "the account lacks an RBAC permission: grant it with a Role (the message names the verb and resource)",
    404: "it does not exist: check the name and the namespace (and that the release is installed)",
    409: "it was changed or created meanwhile: run again",
    410: "the data asked for expired: run again",
    422: "the API server rejected the object as invalid: fix the values named in the message",
    429: "the API server is overloaded: retry later",
}


class KubeApiError(LocoError):
    """A failed Kubernetes API call, as one line: what failed, on which object, and what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
        self.reason = "kube_api"


def api_error(exc: BaseException, what: str = "Kubernetes API call") -> KubeApiError:
    """One clear line for any of ``API_FAILURES``; ``what`` says what was being done to which object."""
    if isinstance(exc, ApiException) and exc.status:
        try:
            body = json.loads(exc.body or "{}")
        except (TypeError, ValueError):
            body = {}
        message = (body.get("message") if isinstance(body, dict) else None) or exc.reason or "no message"
        hint = HINTS.get(exc.status) or ("the API server failed: check its health, retry later"
                                         if exc.status >= 500 else "see the message")
        return KubeApiError(f"{what} failed: {exc.status} {exc.reason}: {message}; {hint}", exc.status)
    detail = exc.reason if isinstance(exc, ApiException) else exc
    if isinstance(detail, urllib3.exceptions.MaxRetryError) and detail.reason is not None:
        detail = detail.reason
    pool = getattr(detail, "pool", None)
    where = f" at {pool.host}:{pool.port}" if pool is not None else ""
    if pool is not None:
        text = str(detail).split("): ", 1)[-1]
    else:  # an ApiException of status 0 carries only the reason's text
        text = detail if isinstance(detail, str) else f"{type(detail).__name__}: {detail}"
    return KubeApiError(f"{what} failed: the API server{where} did not answer ({text}); "
                        "check that it is running and reachable from here, then retry")


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for ``kubeconfig``/``context``, ``$KUBECONFIG``, or the in-cluster service account,
    whose every call times out and whose idempotent calls are retried."""
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
    configuration = client.Configuration()
    try:
        if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise LocoError(f"cannot load Kubernetes credentials ({kubeconfig or 'default'}): {exc}") from exc
    configuration.retries = RETRIES
    api = client.ApiClient(configuration)
    api.rest_client.request = _with_timeout(api.rest_client.request)
    return api


class TimedWebSocket(websocket.WebSocket):
    """The exec and port-forward websocket, with a timeout on every socket operation and the time
    the server was last heard from. The client library connects without a timeout: a server that
    stops answering mid-handshake, or while an upload fills its buffers, would block for ever."""

    heard = 0.0

    def connect(self, url, **options):
        options.setdefault("timeout", READ_TIMEOUT)
        super().connect(url, **options)
        self.heard = time.monotonic()

    def recv_data_frame(self, control_frame: bool = False):
        frame = super().recv_data_frame(control_frame)
        self.heard = time.monotonic()
        return frame


ws_client.WebSocket = TimedWebSocket


def _with_timeout(request):
    """``request`` with the default timeouts where the caller gave none."""

    @functools.wraps(request)
    def timed(*args, _request_timeout=None, **kwargs):
        return request(*args, _request_timeout=_request_timeout or (CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)

    return timed


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


_STORAGE_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
                  "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_quantity(quantity: str) -> int:
    """Bytes in a Kubernetes storage quantity such as ``4Gi`` or ``500M``."""
    text = str(quantity).strip()
    for suffix in sorted(_STORAGE_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * _STORAGE_UNITS[suffix])
    return int(float(text))


def apply(api: client.ApiClient, obj: dict, namespace: str | None = None, dry_run: bool = False) -> dict:
    """Server-side apply ``obj`` (created or updated; our field manager owns what it sets); with
    ``dry_run`` the API server checks it all (admission included) and stores nothing."""
    meta = obj["metadata"]
    res = resource(api, obj["apiVersion"], obj["kind"])
    namespace = meta.get("namespace", namespace) if res.namespaced else None
    result = res.server_side_apply(
        body=obj, name=meta["name"], namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True,
        **({"dry_run": "All"} if dry_run else {}),
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
    try:
        ws = ws_stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, command=argv,
            container=container, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
            _preload_content=False, binary=True,
        )
    except API_FAILURES as exc:  # the handshake: refused, timed out, or the pod cannot take exec
        raise api_error(exc, f"command {argv[0]!r} in pod {namespace}/{pod}") from None
    deadline = time.monotonic() + timeout
    stdout, stderr = bytearray(), bytearray()

    def drain(wait: float = 0) -> None:
        ws.update(timeout=wait)
        stdout.extend(ws.read_stdout() if ws.peek_stdout() else b"")
        stderr.extend(ws.read_stderr() if ws.peek_stderr() else b"")

    try:
        if stdin is not None:
            try:
                for chunk in [stdin] if isinstance(stdin, bytes) else stdin:
                    ws.sock.send_frame(StdinFrame(STDIN_CHANNEL + chunk))
                    drain()
                ws.close_channel(0)
            except (WebSocketException, OSError):
                # A write fails when the command ended before reading all its input (``cat`` on a full
                # volume): the server sends its output and status, then hangs up, often with no close
                # frame (the read that follows fails too).  A status is the result; none, a lost connection.
                status = b""
                with contextlib.suppress(WebSocketException, OSError):
                    drain()
                    status = ws.read_channel(3)
                if not status:
                    raise
                return ExecResult(_exit_code(status), bytes(stdout), bytes(stderr))
        while ws.is_open():
            if time.monotonic() > deadline:
                raise LocoError(f"command {argv[0]!r} in pod {namespace}/{pod} timed out after {timeout:.0f}s")
            _check_alive(ws.sock, f"command {argv[0]!r} in pod {namespace}/{pod}")
            drain(wait=1)
        drain()
        return ExecResult(_exit_code(ws.read_channel(3)), bytes(stdout), bytes(stderr))
    except WebSocketException as exc:
        raise LocoError(f"command {argv[0]!r} in pod {namespace}/{pod}: the connection to the API server "
                        f"failed ({type(exc).__name__}: {exc}); check that it is running, then retry") from None
    finally:
        ws.close()


def _check_alive(sock: TimedWebSocket, what: str) -> None:
    """While a command runs silently, ping the API server; fail once it has not answered for
    ``READ_TIMEOUT`` seconds (a live server answers a ping at once)."""
    silent = time.monotonic() - sock.heard
    if silent > READ_TIMEOUT:
        raise LocoError(f"{what}: the API server stopped answering ({silent:.0f}s without a reply); "
                        "check that it is running, then retry")
    if silent > READ_TIMEOUT / 3:
        sock.ping()


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
