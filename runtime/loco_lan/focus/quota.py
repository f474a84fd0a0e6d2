"""Turn focus into CPU: focused emulators get ``focused_cpu``, the rest ``unfocused_cpu`` or a pause.

``QuotaApplier`` is the single worker between the focus service and a backend.
It only ever applies the latest wanted state: a burst of focus changes collapses
into one pass, a pass only touches emulators whose share actually changes,
failed emulators are retried with backoff until they match (or a newer state
makes the retry moot), and when all is quiet everything is re-asserted now and
then for emulators that restarted. Backends implement ``apply(changes) -> failures`` and
``release(ids)``:

- ``KubernetesCpu``: the Pod ``resize`` subresource (in place, no restart); an
  emulator counts as done only once its kubelet reports the new limit, and where
  the cluster cannot resize (or the kubelet defers or refuses) it is reported as
  not applied, with why;
- ``CgroupCpu``: ``cpu.max`` (cgroup v2, or ``cpu.cfs_quota_us`` on v1/hybrid
  hosts) of a cgroup per emulator process;
- ``QmpPause``: QMP ``stop``/``cont`` on each emulator's monitor socket.
"""

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from loco_lan import qmp
from loco_lan.errors import LocoError

log = logging.getLogger(__name__)

DEFAULT_FOCUSED_CPU = 1.0
DEFAULT_UNFOCUSED_CPU = 0.25
# A reason that means "asked, not done yet" (a kubelet actuating a resize), not a failure.
WAITING = "waiting for "


def plan(instance_ids: Iterable[str], active: Iterable[str]) -> dict[str, bool]:
    """Which instances count as focused. Nothing focused means no favourite: everyone runs full."""
    active = set(active)
    return {i: (not active or i in active) for i in instance_ids}


class QuotaBackend(Protocol):
    name: str

    async def apply(self, changes: Mapping[str, bool]) -> dict[str, str]:
        """Give each id its focused (True) or unfocused (False) share; return {id: reason} for failures."""

    async def release(self, instance_ids: Iterable[str]) -> None:
        """The service is stopping: leave the emulators in a state that needs no focus service."""


class QuotaApplier:
    """The one task applying focus to a backend: latest state wins, nothing applied twice."""

    def __init__(
        self,
        backend: QuotaBackend,
        settle: float = 0.05,
        retry_min: float = 1.0,
        retry_max: float = 30.0,
        resync: float = 60.0,
    ):
        self.backend = backend
        self.settle = settle
        self.resync = resync
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.applied: dict[str, bool] = {}
        self.passes = 0
        self.failures = 0
        self._desired: dict[str, bool] = {}
        self._wanted = asyncio.Event()
        self._failed: dict[str, str] = {}

    @property
    def pending(self) -> bool:
        """True while some emulator does not yet have the share the latest focus asks for."""
        return any(self.applied.get(i) != f for i, f in self._desired.items())

    @property
    def not_applied(self) -> dict[str, str]:
        """Why each emulator still without its share is (the last pass's reason per emulator)."""
        return {i: self._failed.get(i, "not tried yet") for i, f in self._desired.items()
                if self.applied.get(i) != f}

    def want(self, desired: Mapping[str, bool]) -> None:
        """Record the latest wanted state; returns at once, the worker catches up."""
        self._desired = dict(desired)
        self._wanted.set()

    async def run(self) -> None:
        delay = self.retry_min
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), self.resync)
            except TimeoutError:
                # Quiet for a while: re-assert everything, since an emulator restarted meanwhile (new pod,
                # new process, fresh QEMU) has lost its share. Backends skip what already matches.
                self.applied.clear()
            else:
                await asyncio.sleep(self.settle)  # let a burst of changes settle; only its end is applied
                self._wanted.clear()
            desired = self._desired
            # Demotions first, so a newly focused emulator never competes with one not yet demoted.
            changes = dict(
                sorted(((i, f) for i, f in desired.items() if self.applied.get(i) != f), key=lambda kv: kv[1])
            )
            if not changes:
                continue
            self.passes += 1
            try:
                failed = await self.backend.apply(changes)
            except LocoError as exc:
                failed = dict.fromkeys(changes, str(exc))
            for instance_id, focused in changes.items():
                if instance_id not in failed:
                    self.applied[instance_id] = focused
                else:  # half done (a resize asked for, not yet applied): what it has now is unknown
                    self.applied.pop(instance_id, None)
            self._report(failed)
            if not failed:
                delay = self.retry_min
                continue
            self.failures += len(failed)
            try:  # retry after a backoff, or sooner if a newer state arrives
                await asyncio.wait_for(self._wanted.wait(), delay)
            except TimeoutError:
                self._wanted.set()
            delay = min(delay * 2, self.retry_max)

    def _report(self, failed: dict[str, str]) -> None:
        for instance_id, reason in failed.items():
            if self._failed.get(instance_id) != reason:  # say it once, not on every retry
                log.log(logging.INFO if reason.startswith(WAITING) else logging.WARNING,
                        "%s quota for %s not applied yet (will retry): %s", self.backend.name, instance_id, reason)
        for instance_id in self._failed.keys() - failed.keys():
            log.info("%s quota for %s no longer failing", self.backend.name, instance_id)
        self._failed = dict(failed)

    async def release(self) -> None:
        """Undo what was applied (only that: emulators never reached need nothing undone)."""
        await self.backend.release(list(self.applied))


def _template_path(template: str, instance_id: str) -> str:
    return template.replace("{id}", instance_id)


# -- pause: QMP stop/cont --------------------------------------------------------------------------


class QmpPause:
    """Pause unfocused guests (QMP ``stop``) and resume focused ones (``cont``)."""

    name = "pause"

    def __init__(self, socket_template: str, timeout: float = 3.0):
        if "{id}" not in socket_template:
            raise LocoError("the QMP socket path must contain {id}, e.g. /run/loco/{id}.qmp")
        self.socket_template = socket_template
        self.timeout = timeout

    async def _run(self, instance_id: str, command: str) -> str | None:
        try:
            await qmp.run(_template_path(self.socket_template, instance_id), command, timeout=self.timeout)
        except qmp.QmpError as exc:
            return str(exc)
        return None

    async def _phase(self, ids: list[str], command: str) -> dict[str, str]:
        reasons = await asyncio.gather(*(self._run(i, command) for i in ids))
        return {i: r for i, r in zip(ids, reasons, strict=True) if r}

    async def apply(self, changes: Mapping[str, bool]) -> dict[str, str]:
        failed = await self._phase([i for i, f in changes.items() if not f], "stop")
        failed.update(await self._phase([i for i, f in changes.items() if f], "cont"))
        return failed

    async def release(self, instance_ids: Iterable[str]) -> None:
        failed = await self._phase(list(instance_ids), "cont")
        for instance_id, reason in failed.items():
            log.warning("could not resume %s on shutdown: %s", instance_id, reason)


# -- local: cgroup cpu controller --------------------------------------------------------------------

CFS_PERIOD_US = 100_000


class CgroupFs:
    """A directory of per-emulator cgroups under the cpu controller, v2 (``cpu.max``) or v1 (CFS files)."""

    def __init__(self, base: Path, version: int):
        self.base = base
        self.version = version

    @classmethod
    def detect(cls, mount: str | Path = "/sys/fs/cgroup", name: str = "loco-lan") -> "CgroupFs":
        """Find a cpu controller we can write to, create ``<controller root>/<name>``, or raise LocoError."""
        mount = Path(mount)
        for root in (mount, mount / "unified"):
            try:
                controllers = (root / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "cpu" in controllers:
                fs = cls(root / name, 2)
                fs._prepare(enable=[root / "cgroup.subtree_control", root / name / "cgroup.subtree_control"])
                return fs
        for root in (mount / "cpu", mount / "cpu,cpuacct"):
            if (root / "cpu.cfs_quota_us").exists():
                fs = cls(root / name, 1)
                fs._prepare(enable=[])
                return fs
        raise LocoError(f"no cgroup cpu controller under {mount} (neither cgroup v2 with 'cpu' nor v1 'cpu')")

    def _prepare(self, enable: list[Path]) -> None:
        try:
            self.base.mkdir(exist_ok=True)
            for control in enable:  # v2: a child only gets cpu.max if its parent delegates "cpu"
                control.write_text("+cpu")
        except OSError as exc:
            raise LocoError(f"cgroup {self.base} is not writable: {exc.strerror or exc}") from exc

    def limit(self, group: str, pid: int, cpus: float | None) -> None:
        """Put process ``pid`` (all its threads) in ``group`` capped at ``cpus`` CPUs (None: uncapped)."""
        self.set_cpus(group, cpus)
        (self.base / group / "cgroup.procs").write_text(str(pid))

    def set_cpus(self, group: str, cpus: float | None) -> None:
        """Cap ``group`` (made if missing) at ``cpus`` CPUs (None: uncapped)."""
        path = self.base / group
        path.mkdir(exist_ok=True)
        quota = None if cpus is None else max(1000, round(cpus * CFS_PERIOD_US))
        if self.version == 2:
            (path / "cpu.max").write_text(f"{quota or 'max'} {CFS_PERIOD_US}")
        else:
            (path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota or -1))

    def read_cpus(self, group: str) -> float | None:
        """The cap currently set on ``group`` in CPUs, None when uncapped."""
        path = self.base / group
        if self.version == 2:
            quota, period = (path / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        quota = int((path / "cpu.cfs_quota_us").read_text())
        return None if quota < 0 else quota / int((path / "cpu.cfs_period_us").read_text())


class CgroupCpu:
    """Cap each local emulator process (found through its pid file) with a cgroup of its own."""

    name = "cgroup"

    def __init__(self, fs: CgroupFs, pid_file_template: str, focused_cpu: float, unfocused_cpu: float):
        if "{id}" not in pid_file_template:
            raise LocoError("the pid file path must contain {id}, e.g. /run/loco/{id}.pid")
        self.fs = fs
        self.pid_file_template = pid_file_template
        self.focused_cpu = focused_cpu
        self.unfocused_cpu = unfocused_cpu

    def _pid(self, instance_id: str) -> int:
        path = Path(_template_path(self.pid_file_template, instance_id))
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise LocoError(f"no usable pid file {path} (is the emulator running?)") from exc

    def _limit_all(self, targets: Mapping[str, float | None]) -> dict[str, str]:
        failed = {}
        for instance_id, cpus in targets.items():
            try:
                self.fs.limit(instance_id, self._pid(instance_id), cpus)
            except LocoError as exc:
                failed[instance_id] = str(exc)
            except OSError as exc:
                failed[instance_id] = f"cgroup write failed: {exc.strerror or exc}"
        return failed

    async def apply(self, changes: Mapping[str, bool]) -> dict[str, str]:
        targets = {i: self.focused_cpu if f else self.unfocused_cpu for i, f in changes.items()}
        return await asyncio.to_thread(self._limit_all, targets)

    async def release(self, instance_ids: Iterable[str]) -> None:
        failed = await asyncio.to_thread(self._limit_all, dict.fromkeys(instance_ids))
        for instance_id, reason in failed.items():
            log.warning("could not uncap %s on shutdown: %s", instance_id, reason)


# -- Kubernetes: Pod resize subresource ---------------------------------------------------------------

EMULATOR_SELECTOR = "app.kubernetes.io/component=emulator"
# Everything KubernetesCpu calls; the chart's Role grants exactly this (see examples/focus/rbac.yaml).
RBAC_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
]


def cpu_millis(quantity: str | None) -> int | None:
    """Kubernetes CPU quantity ('250m', '1', '0.5', '1k' as kwok nodes have) in millicores; None when
    absent or unparsable."""
    if not quantity:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mkMG]?)", str(quantity).strip())
    if not match:
        return None
    return round(float(match.group(1)) * {"m": 1, "": 1000, "k": 10**6, "M": 10**9, "G": 10**12}[match.group(2)])


class CoreApi(Protocol):
    """The slice of ``kubernetes.client.CoreV1Api`` the backend uses (also what unit tests fake)."""

    def get_api_resources(self): ...

    def list_namespaced_pod(self, namespace: str, label_selector: str = ...): ...

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict): ...

    def patch_namespaced_pod_resize(self, name: str, namespace: str, body: dict): ...


class KubernetesCpu:
    """Resize the emulator container's CPU in place; done when the kubelet says it is."""

    name = "kubernetes"

    def __init__(
        self,
        core_api: CoreApi,
        namespace: str,
        focused_cpu: float,
        unfocused_cpu: float,
        release: str | None = None,
        container: str = "emulator",
    ):
        self.api = core_api
        self.namespace = namespace
        self.focused_millis = round(focused_cpu * 1000)
        self.unfocused_millis = round(unfocused_cpu * 1000)
        self.release_name = release
        self.container = container
        self._can_resize: bool | None = None
        self._unresizable: set[str] = set()  # uids of pods whose node cannot resize in place

    def _resize_supported(self) -> bool:
        if self._can_resize is None:
            resources = self.api.get_api_resources().resources or []
            self._can_resize = any(r.name == "pods/resize" for r in resources)
            if not self._can_resize:
                log.warning("this cluster has no pods/resize subresource (in-place resize, Kubernetes 1.33+): "
                            "focus cannot change CPU shares here, and pods are not restarted for it")
        return self._can_resize

    def _instance_of(self, pod_name: str) -> str | None:
        """``<release>-emulator-<ordinal>`` is ``instance-<ordinal>``."""
        prefix = re.escape(f"{self.release_name}-emulator-") if self.release_name else r".*-emulator-"
        match = re.fullmatch(prefix + r"(\d+)", pod_name)
        return f"instance-{int(match.group(1))}" if match else None

    def pods_by_instance(self) -> dict:
        pods = self.api.list_namespaced_pod(self.namespace, label_selector=EMULATOR_SELECTOR).items or []
        by_instance = {}
        for pod in pods:
            instance_id = self._instance_of(pod.metadata.name)
            if instance_id:
                by_instance[instance_id] = pod
        return by_instance

    def _container(self, pod):
        containers = pod.spec.containers
        named = [c for c in containers if c.name == self.container]
        if named:
            return named[0]
        if len(containers) == 1:
            return containers[0]
        raise LocoError(f"pod {pod.metadata.name} has no container named {self.container!r}")

    def resize_body(self, pod, millis: int) -> dict | None:
        """The resize patch giving ``pod`` a CPU limit of ``millis``; None when it already has it."""
        container = self._container(pod)
        resources = container.resources
        limits = dict((resources.limits if resources else None) or {})
        requests = dict((resources.requests if resources else None) or {})
        limit, request = cpu_millis(limits.get("cpu")), cpu_millis(requests.get("cpu"))
        wanted: dict = {"limits": {"cpu": f"{millis}m"}}
        if request is not None and (request == limit or request > millis):
            # Guaranteed pods must stay Guaranteed (request == limit); others only lower the request
            # as far as the API requires (request <= limit).
            wanted["requests"] = {"cpu": f"{millis}m"}
            if request == millis and limit == millis:
                return None
        elif limit == millis:
            return None
        return {"spec": {"containers": [{"name": container.name, "resources": wanted}]}}

    def _set(self, pod, millis: int) -> None:
        """Ask for ``millis`` of CPU; LocoError saying why until the kubelet reports it applied."""
        name = pod.metadata.name
        if not self._resize_supported():
            raise LocoError("not applied: the cluster has no pods/resize subresource (in-place resize)")
        if pod.metadata.uid in self._unresizable:
            raise LocoError(f"not applied: the node of {name} cannot resize in place")
        body = self.resize_body(pod, millis)
        if body is not None:
            try:
                self.api.patch_namespaced_pod_resize(name, self.namespace, body)
            except Exception as exc:
                # The API refuses resizes of pods whose kubelet never reported container resources.
                if getattr(exc, "status", None) != 422 or "without support for resize" not in str(
                    getattr(exc, "body", "")
                ):
                    raise
                if not self._unresizable:
                    log.warning("pod %s runs on a node that cannot resize in place: focus cannot change its "
                                "CPU share (nor that of other such pods), and does not restart them", name)
                self._unresizable.add(pod.metadata.uid)
                raise LocoError(f"not applied: the node of {name} cannot resize in place") from None
        if self._actual_millis(pod) == millis:
            return
        pending = {c.type: c for c in pod.status.conditions or []} if pod.status else {}
        deferred = pending.get("PodResizePending")
        if body is None and deferred is not None and deferred.reason == "Infeasible":
            raise LocoError(f"not applied: the kubelet cannot give {name} {millis}m of CPU: {deferred.message}")
        if body is None and deferred is not None:
            raise LocoError(f"{WAITING}the kubelet: resize of {name} deferred: {deferred.message}")
        raise LocoError(f"{WAITING}the kubelet to resize {name} to {millis}m")

    def _actual_millis(self, pod) -> int | None:
        """The CPU limit the kubelet reports the emulator container running with."""
        container = self._container(pod).name
        for status in (pod.status.container_statuses or []) if pod.status else []:
            if status.name == container and status.resources is not None:
                return cpu_millis((status.resources.limits or {}).get("cpu"))
        return None

    def apply_sync(self, changes: Mapping[str, bool]) -> dict[str, str]:
        """Blocking body of ``apply``; also what an integration test can call directly."""
        try:
            pods = self.pods_by_instance()
        except Exception as exc:  # whatever the client raises is reported per instance and retried
            reason = _describe_api_error(exc) or f"listing emulator pods failed: {exc}"
            return dict.fromkeys(changes, reason)
        failed = {}
        for instance_id, focused in changes.items():
            pod = pods.get(instance_id)
            if pod is None:
                failed[instance_id] = f"no emulator pod for {instance_id} in namespace {self.namespace}"
                continue
            try:
                self._set(pod, self.focused_millis if focused else self.unfocused_millis)
            except LocoError as exc:
                failed[instance_id] = str(exc)
            except Exception as exc:  # as above
                failed[instance_id] = (
                    _describe_api_error(exc) or f"patching {pod.metadata.name} failed: {exc}"
                )
        return failed

    async def apply(self, changes: Mapping[str, bool]) -> dict[str, str]:
        return await asyncio.to_thread(self.apply_sync, changes)

    async def release(self, instance_ids: Iterable[str]) -> None:
        """Nothing to undo: pods keep their current shares and the next focus service re-applies its state."""


def _describe_api_error(exc: Exception) -> str | None:
    """One line for an ApiException: status, reason and the API's own message when it sent one."""
    status = getattr(exc, "status", None)
    if status is None:
        return None
    line = f"Kubernetes API answered {status} {getattr(exc, 'reason', '') or ''}".strip()
    try:
        message = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{line}: {message}" if message else line
