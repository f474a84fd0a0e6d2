"""The local cluster's node agent: what a kubelet and a CSI driver would do.

Runs beside kwok and reconciles at once when a pod or claim changes (watched),
and every half second anyway:
- PersistentVolumeClaims of the ``loco.lan/hostpath`` storage classes get a
  hostPath PersistentVolume under ``<state>/volumes`` once a pod needs them
  (``WaitForFirstConsumer``, as local-path does): a ReadWriteOnce(Pod) volume is
  pinned to the node of that pod; a class with ``parameters.filesystem: tmpfs``
  gives each volume a filesystem of the claim's size, so it fills up as a real
  disk does (in memory: emptied when the cluster stops); a claim with a PersistentVolumeClaim ``dataSource`` starts as a
  copy of that claim (a CSI clone).  Released volumes are deleted with their
  directory.
- Access modes are enforced as a kubelet and a CSI driver enforce them: a
  ReadOnlyMany volume is mounted read-only whatever the pod asks; a
  ReadWriteOnce volume in use on one node is refused to pods on another
  (``Multi-Attach error``), a ReadWriteOncePod one to any second pod.  A refused
  pod gets a Warning event, no exec and no process, and is reported not ready.
- Pods on kwok nodes get kwok ``Exec``/``Logs``/``PortForward`` resources so
  ``kubectl exec``/``cp`` see the pod's volumes (claims, emptyDirs, hostPaths,
  Secrets and ConfigMaps written out as files; see sandbox.py), ``kubectl
  logs`` reads a file, and ``kubectl port-forward`` reaches the local address
  named in the pod's ``loco.lan/port-forward`` annotation (``{"5901":
  "127.0.0.1:15901"}``; a malformed one is reported on that pod as an event and
  ignored), each connection relayed by socat and closed at the pod's end once
  the client has closed it, as a kubelet does.  The pod is then annotated
  ``loco.lan/sandbox: ready``.
- Running containers report the resources they were given in the pod status,
  as a kubelet that resizes in place does, so the API server accepts
  ``pods/resize``.  A resize is then admitted as a kubelet admits it: refused
  (``PodResizePending``, ``Infeasible``) when it asks for more CPU than the node
  has, deferred (``Deferred``) while the node's other pods leave too little, and
  reported done only once applied.  A local emulator's CPU limit is applied for
  real, as the kubelet's CRI would: the emulator and its QEMU run in a cgroup of
  the pod's whose ``cpu.max`` follows the container's limit.  Pods annotated
  ``loco.lan/in-place-resize: "false"`` report no resources, like pods of a
  kubelet that cannot resize.
- Pods annotated ``loco.lan/run-local: emulator`` get a real emulator process on
  this machine, its VNC and health ports forwarded as the pod's 5901 and 8080
  (see localemu.py).  Like a kubelet's readiness probe, the emulator's /health
  decides the pod's Ready condition; its restarts count in ``restartCount``.
  The emulators stop with their pods and with the agent.
- Pods annotated ``loco.lan/run-local: process`` whose container runs the ``loco``
  command (the focus service, the streaming gateway) get that command run here,
  with their service account's token and in-cluster addresses resolved to the
  local processes behind them (see localsvc.py); readiness follows their probe.
"""

import argparse
import base64
import contextlib
import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.cluster import localemu, localsvc, sandbox
from loco_lan.cluster.local import PROVISIONER
from loco_lan.errors import LocoError
from loco_lan.focus.quota import CgroupFs, cpu_millis
from loco_lan.fsutil import atomic_write
from loco_lan.netutil import free_port

log = logging.getLogger("loco.agent")
KWOK_API = "kwok.x-k8s.io/v1alpha1"
SANDBOX_ANNOTATION = "loco.lan/sandbox"
FORWARD_ANNOTATION = "loco.lan/port-forward"
RESIZE_ANNOTATION = "loco.lan/in-place-resize"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
HOSTNAME_LABEL = "kubernetes.io/hostname"
SINGLE_NODE_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})


class VolumeRefused(LocoError):
    """A pod cannot have one of its volumes (what a kubelet reports as FailedAttachVolume/FailedMount)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Agent:
    def __init__(self, api: client.ApiClient, state_dir: Path):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.volumes = state_dir / "volumes"
        self.pods = state_dir / "pods"
        self.done: dict[str, dict] = {}  # pod uid -> port forwards it was sandboxed with
        self.emulators = localemu.LocalEmulators(self.pods)
        self.refused: dict[str, str] = {}  # pod uid -> why its emulator cannot start (said once)
        self.hub_ports: dict[str, int] = {}  # "namespace/instance-0 host" -> its socket LAN's loopback port
        self.reported: dict[str, set[str]] = {}  # pod uid -> warnings already sent as events
        self.attached: dict[str, list] = {}  # claim "ns/name" -> live pods using it, oldest first (this pass)
        self.nodes: dict[str, int] = {}  # node -> allocatable CPU in millicores (this pass)
        self.node_cpu_used: dict[str, int] = {}  # node -> CPU its pods were given, millicores (this pass)
        self.cgroups, self.no_cgroups = _cgroups()
        self.wake = threading.Event()

    def run(self, interval: float = 0.5) -> None:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self.emulators.reap_orphans()
        for list_call in (self.core.list_pod_for_all_namespaces,
                          self.core.list_persistent_volume_claim_for_all_namespaces):
            threading.Thread(target=self.wake_on_changes, args=(list_call,), daemon=True).start()
        try:
            while True:
                self.wake.clear()
                try:
                    self.reconcile()
                except Exception:  # keep serving; the next pass retries
                    log.exception("reconcile failed")
                self.wake.wait(interval)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping already
            self.emulators.stop_all()

    def wake_on_changes(self, list_call) -> None:
        """Cut the loop's wait short whenever the listed objects change: a new pod gets its
        sandbox (and so exec) right after it turns Ready, not up to an interval later."""
        while True:
            try:
                for _ in watch.Watch().stream(list_call, timeout_seconds=300, _request_timeout=330):
                    self.wake.set()
            except Exception as exc:  # the API away for a moment: the loop still runs on its interval
                log.debug("watch of %s ended: %s", list_call.__name__, exc)
                time.sleep(1)

    def reconcile(self) -> None:
        self.provision()
        self.sandbox_pods()

    # -- volumes -------------------------------------------------------
    def provision(self) -> None:
        ours = {sc.metadata.name: sc for sc in self.storage.list_storage_class().items
                if sc.provisioner == PROVISIONER}
        claims = self.core.list_persistent_volume_claim_for_all_namespaces().items
        for pvc in claims:
            pending = not pvc.spec.volume_name and not pvc.metadata.deletion_timestamp
            storage_class = ours.get(pvc.spec.storage_class_name)
            if not pending or storage_class is None:
                continue
            node = (pvc.metadata.annotations or {}).get(SELECTED_NODE)
            if storage_class.volume_binding_mode == "WaitForFirstConsumer" and not node:
                continue  # the scheduler names the node once a pod needs the claim
            try:
                self.create_volume(pvc, storage_class, node, claims)
            except LocoError as exc:
                log.warning("cannot provision %s/%s: %s", pvc.metadata.namespace, pvc.metadata.name, exc)
        for pv in self.core.list_persistent_volume().items:
            annotations = pv.metadata.annotations or {}
            if (annotations.get(PROVISIONED_BY) == PROVISIONER and pv.status.phase == "Released"
                    and pv.spec.persistent_volume_reclaim_policy == "Delete"):
                remove_volume_dir(Path(pv.spec.host_path.path))
                self.core.delete_persistent_volume(pv.metadata.name)
                log.info("deleted volume %s", pv.metadata.name)

    def create_volume(self, pvc, storage_class, node: str | None, claims: list) -> None:
        name = f"pvc-{pvc.metadata.uid}"
        path = self.volumes / name
        size = pvc.spec.resources.requests["storage"]
        source = pvc.spec.data_source
        if source is not None and source.kind == "PersistentVolumeClaim":
            origin = next((c for c in claims if c.metadata.namespace == pvc.metadata.namespace
                           and c.metadata.name == source.name and c.spec.volume_name), None)
            if origin is None:
                return  # a clone waits for its source to exist and be bound
            origin_path = Path(self.core.read_persistent_volume(origin.spec.volume_name).spec.host_path.path)
        else:
            origin_path = None
        path.mkdir(parents=True, exist_ok=True)
        if (storage_class.parameters or {}).get("filesystem") == "tmpfs" and not os.path.ismount(path):
            mount_tmpfs(path, kube.parse_quantity(size))
        if origin_path is not None and not any(path.iterdir()):
            copy_tree(origin_path, path)
        modes = pvc.spec.access_modes or []
        body = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": modes,
                "persistentVolumeReclaimPolicy": storage_class.reclaim_policy or "Delete",
                "storageClassName": storage_class.metadata.name,
                "volumeMode": pvc.spec.volume_mode or "Filesystem",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": pvc.metadata.namespace, "name": pvc.metadata.name,
                             "uid": pvc.metadata.uid},
            },
        }
        if node and set(modes) <= SINGLE_NODE_MODES:
            # A node-local disk, as local-path provisions: every pod using it lands on that node.
            body["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}}
        try:
            self.core.create_persistent_volume(body)
            log.info("provisioned %s for %s/%s at %s", name, pvc.metadata.namespace, pvc.metadata.name, path)
        except ApiException as exc:
            if exc.status != 409:
                raise

    # -- pods ----------------------------------------------------------
    def sandbox_pods(self) -> None:
        live, running = set(), set()
        pods = self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items
        self.attached = claim_users(pods)
        self.nodes = {node.metadata.name: cpu_millis((node.status.allocatable or {}).get("cpu")) or 0
                      for node in self.core.list_node().items if node.status}
        self.node_cpu_used = cpu_in_use(self.api.sanitize_for_serialization(pods))
        for pod in pods:
            uid = pod.metadata.uid
            live.add(uid)
            if pod.metadata.deletion_timestamp:
                continue
            running.add(uid)
            try:  # one pod's trouble is that pod's, never every pod's
                self.tend_pod(pod)
            except VolumeRefused as exc:
                # Status before the event: whoever sees the refusal also sees the pod not ready.
                self.report_status(pod, pod.metadata.annotations or {}, blocked=True)
                self.warn(pod, exc.reason, str(exc))
            except Exception as exc:
                log.exception("pod %s/%s", pod.metadata.namespace, pod.metadata.name)
                self.warn(pod, "FailedSandbox", f"loco agent: {exc}")
        self.emulators.keep(running)
        self.resolve_addresses()
        self.emulators.tend()
        for stale in set(self.done) - live:
            del self.done[stale]
            self.refused.pop(stale, None)
            shutil.rmtree(self.pods / stale, ignore_errors=True)
        for stale in set(self.reported) - live:
            del self.reported[stale]

    def tend_pod(self, pod) -> None:
        uid = pod.metadata.uid
        annotations = pod.metadata.annotations or {}
        run = annotations.get(localemu.RUN_ANNOTATION)
        mounts = None
        if run in ("emulator", localsvc.RUN_VALUE) and uid not in self.emulators:
            mounts = self.pod_mounts(pod)
            if mounts is not None:
                (self.add_emulator if run == "emulator" else self.add_service)(pod, mounts)
        self.report_status(pod, annotations)
        try:
            explicit = port_forwards(annotations.get(FORWARD_ANNOTATION))
        except LocoError as exc:
            self.warn(pod, "BadPortForward", f"annotation {FORWARD_ANNOTATION} ignored: {exc}")
            explicit = {}
        # An explicit annotation wins over the local emulator's ports.
        forwards = {**self.emulators.forwards(uid), **explicit}
        if self.done.get(uid) == forwards:
            return
        mounts = mounts or self.pod_mounts(pod)
        if mounts is None:
            return
        self.sandbox_pod(pod, mounts, forwards)
        self.done[uid] = forwards

    def warn(self, pod, reason: str, message: str) -> None:
        """A Warning event on the pod and a log line, once per distinct message (as a kubelet would)."""
        said = self.reported.setdefault(pod.metadata.uid, set())
        if message in said:
            return
        said.add(message)
        meta = pod.metadata
        log.warning("pod %s/%s: %s: %s", meta.namespace, meta.name, reason, message)
        now = datetime.now(UTC)
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_event(meta.namespace, {
                "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta.name,
                                   "namespace": meta.namespace, "uid": meta.uid},
                "reason": reason, "message": message, "type": "Warning", "count": 1,
                "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": "loco-agent", "host": pod.spec.node_name},
            })

    def report_status(self, pod, annotations: dict, blocked: bool = False) -> None:
        """Send what a kubelet would say of this pod's containers (see ``status_report``), once a
        resize it asks for is admitted (see ``resize_verdict``) and, for a local emulator, applied."""
        emulator = self.emulators.get(pod.metadata.uid)
        manifest = self.api.sanitize_for_serialization(pod)
        node = pod.spec.node_name
        verdict = resize_verdict(manifest, self.nodes.get(node, 0), self.node_cpu_used.get(node, 0))
        if verdict is None and isinstance(emulator, localemu.Emulator):
            verdict = self.limit_cpu(emulator, manifest)
        report = status_report(
            manifest, resources=annotations.get(RESIZE_ANNOTATION) != "false",
            emulator=(emulator.container, emulator.ready(), emulator.exits) if emulator else None,
            now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), blocked=blocked, resize_pending=verdict)
        if report is None:
            return
        # The resourceVersion makes this lose, not win, against kwok's own status updates.
        patch = {"metadata": {"resourceVersion": pod.metadata.resource_version}, "status": report}
        try:
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, patch)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or changed since listed: the next pass sees it
                raise

    def limit_cpu(self, emulator: localemu.Emulator, pod: dict) -> tuple[str, str] | None:
        """Give a local emulator its container's CPU limit (cpu.max); a PodResizePending verdict if
        this node cannot."""
        container = localemu.emulator_container(pod)
        millis = cpu_millis(((container.get("resources") or {}).get("limits") or {}).get("cpu"))
        if self.cgroups is None:
            return ("Infeasible", f"this node cannot limit CPU: {self.no_cgroups}") if millis else None
        try:
            emulator.limit_cpu(millis)
        except OSError as exc:
            return "Infeasible", f"cannot set the CPU limit of {emulator.pod}: {exc.strerror or exc}"
        return None

    def add_emulator(self, pod, mounts: dict[str, list[sandbox.Mount]]) -> None:
        """Start the pod's emulator here, once its volumes are bound and its env resolves."""
        meta, manifest = pod.metadata, self.api.sanitize_for_serialization(pod)
        container = localemu.emulator_container(manifest)["name"]
        pod_dir, name = self.pods / meta.uid, f"{meta.namespace}/{meta.name}"
        log_file = pod_dir / f"{container}.log"
        try:
            env = localemu.emulator_env(manifest, mounts[container], pod_dir,
                                        lambda kind, ref, key: self.lookup(meta.namespace, kind, ref, key),
                                        hub_port=self.hub_port)
        except LocoError as exc:  # what a kubelet reports as CreateContainerConfigError
            self.refuse(meta.uid, name, log_file, "the emulator", exc)
            return
        self.emulators.add(meta.uid, name, container, env, log_file, self.cgroups)

    def hub_port(self, master: str) -> int:
        """One loopback port per socket LAN, kept while the agent runs: instance 0 restarted listens
        where its peers' uplinks reconnect."""
        if master not in self.hub_ports:
            self.hub_ports[master] = free_port()
        return self.hub_ports[master]

    def add_service(self, pod, mounts: dict[str, list[sandbox.Mount]]) -> None:
        """Run the pod's ``loco`` container here (localsvc), once its volumes are there."""
        meta, manifest = pod.metadata, self.api.sanitize_for_serialization(pod)
        container = manifest["spec"]["containers"][0]
        pod_dir, name = self.pods / meta.uid, f"{meta.namespace}/{meta.name}"
        log_file = pod_dir / f"{container['name']}.log"
        try:
            env = localemu.resolve_env(container, manifest,
                                       lambda kind, ref, key: self.lookup(meta.namespace, kind, ref, key))
            env.update(PATH=os.environ.get("PATH", os.defpath), HOSTNAME=meta.name)
            kubeconfig = self.service_account_kubeconfig(manifest, pod_dir)
            if kubeconfig:
                env["KUBECONFIG"] = str(kubeconfig)
            service = localsvc.LocalService(manifest, container, pod_dir, env, log_file, mounts[container["name"]],
                                            localsvc.config_files(manifest, pod_dir))
        except LocoError as exc:  # what a kubelet reports as CreateContainerConfigError
            self.refuse(meta.uid, name, log_file, "the container", exc)
            return
        self.emulators.put(meta.uid, service)

    def refuse(self, uid: str, pod: str, log_file: Path, what: str, exc: LocoError) -> None:
        """Say once, in the agent's log and the pod's, why its local process cannot start."""
        if self.refused.get(uid) != str(exc):
            self.refused[uid] = str(exc)
            log.warning("cannot run %s of %s: %s", what, pod, exc)
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log_note(log_file, f"loco agent: cannot run {what}: {exc}")

    def service_account_kubeconfig(self, pod: dict, pod_dir: Path) -> Path | None:
        """A kubeconfig with a token of the pod's service account (what the kubelet would mount at
        /var/run/secrets/kubernetes.io/serviceaccount), None when the pod mounts no token."""
        spec, namespace = pod["spec"], pod["metadata"]["namespace"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        account = spec.get("serviceAccountName") or "default"
        request = self.core.create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": 86400}})
        path = pod_dir / "serviceaccount.kubeconfig"
        pod_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": account,
            "clusters": [{"name": "local", "cluster": {
                "server": self.api.configuration.host, "certificate-authority": self.api.configuration.ssl_ca_cert}}],
            "users": [{"name": account, "user": {"token": request.status.token}}],
            "contexts": [{"name": account, "context": {"cluster": "local", "user": account, "namespace": namespace}}],
        }).encode(), mode=0o600)
        return path

    def resolve_addresses(self) -> None:
        """Point the local services at the local processes behind the in-cluster names they use."""
        local = self.emulators.emulators
        if not any(isinstance(p, localsvc.LocalService) for p in local.values()):
            return
        pods = [(self.api.sanitize_for_serialization(pod), local[pod.metadata.uid].forwards())
                for pod in self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items
                if pod.metadata.uid in local]
        services = [self.api.sanitize_for_serialization(s) for s in self.core.list_service_for_all_namespaces().items]
        book = localsvc.address_book(pods, services)
        for process in local.values():
            if isinstance(process, localsvc.LocalService) and process.follow(book):
                log.info("restarting %s: the addresses it uses moved", process.pod)

    def lookup(self, namespace: str, kind: str, name: str, key: str) -> str | None:
        """A key of a Secret or ConfigMap, None when either is missing."""
        value = (self.object_data(namespace, kind, name) or {}).get(key)
        return None if value is None else value.decode()

    def object_data(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        """The keys of a Secret (``kind`` secret) or ConfigMap (configmap), None when it does not exist."""
        try:
            if kind == "secret":
                data = self.core.read_namespaced_secret(name, namespace).data or {}
                return {key: base64.b64decode(value) for key, value in data.items()}
            config_map = self.core.read_namespaced_config_map(name, namespace)
            return {**{key: value.encode() for key, value in (config_map.data or {}).items()},
                    **{key: base64.b64decode(value) for key, value in (config_map.binary_data or {}).items()}}
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pod_mounts(self, pod) -> dict[str, list[sandbox.Mount]] | None:
        """Host directories for each container's volume mounts, or None while a claim is unbound;
        VolumeRefused when the claim's access modes do not allow this pod to have it."""
        sources: dict[str, tuple[str, bool]] = {}
        pod_dir = self.pods / pod.metadata.uid
        for volume in pod.spec.volumes or []:
            if volume.persistent_volume_claim:
                claim = self.core.read_namespaced_persistent_volume_claim(
                    volume.persistent_volume_claim.claim_name, pod.metadata.namespace)
                if not claim.spec.volume_name:
                    return None
                pv = self.core.read_persistent_volume(claim.spec.volume_name)
                host = pv.spec.host_path or pv.spec.local
                if host is None:
                    continue
                users = self.attached.get(f"{pod.metadata.namespace}/{claim.metadata.name}", [])
                check_attach(pod, pv.metadata.name, pv.spec.access_modes or [], users)
                # A CSI driver publishes a ReadOnlyMany volume read-only, whatever the pod asks.
                read_only = bool(volume.persistent_volume_claim.read_only) or (pv.spec.access_modes or []) == [
                    "ReadOnlyMany"]
                sources[volume.name] = (host.path, read_only)
            elif volume.empty_dir is not None:
                path = pod_dir / "volumes" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                sources[volume.name] = (str(path), False)
            elif volume.host_path:
                sources[volume.name] = (volume.host_path.path, False)
            elif volume.secret or volume.config_map:
                source = volume.secret or volume.config_map
                kind, name = ("secret", source.secret_name) if volume.secret else ("configmap", source.name)
                data = self.object_data(pod.metadata.namespace, kind, name)
                if data is None and not source.optional:
                    return None  # a kubelet waits for it too
                path = pod_dir / "volumes" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                for file, content in volume_files(data or {}, source.items).items():
                    atomic_write(path / file, content, mode=source.default_mode or 0o644)
                sources[volume.name] = (str(path), True)
        mounts = {}
        for container in pod.spec.containers:
            mounts[container.name] = [
                sandbox.Mount(
                    source=str(Path(sources[m.name][0]) / (m.sub_path or "")).rstrip("/"),
                    target=m.mount_path,
                    read_only=bool(m.read_only) or sources[m.name][1],
                )
                for m in container.volume_mounts or [] if m.name in sources
            ]
        return mounts

    def sandbox_pod(self, pod, mounts: dict[str, list[sandbox.Mount]], forwards: dict[str, str]) -> None:
        meta = pod.metadata
        pod_dir = self.pods / meta.uid
        pod_dir.mkdir(parents=True, exist_ok=True)
        owner = [{"apiVersion": "v1", "kind": "Pod", "name": meta.name, "uid": meta.uid}]
        execs, logs = [], []
        for container, container_mounts in mounts.items():
            args_file = pod_dir / f"{container}.args"
            sandbox.write_args(args_file, sandbox.bwrap_args(container_mounts, hostname=meta.name))
            execs.append({"containers": [container], "local": {
                "workDir": str(pod_dir), "envs": [{"name": sandbox.POD_ARGS_ENV, "value": str(args_file)}]}})
            log_file = pod_dir / f"{container}.log"
            if not log_file.exists() and meta.uid not in self.emulators:
                log_note(log_file, f"{container}: simulated by kwok on {pod.spec.node_name}")
            logs.append({"containers": [container], "logsFile": str(log_file)})
        metadata = {"name": meta.name, "namespace": meta.namespace, "ownerReferences": owner}
        kube.apply(self.api, {"apiVersion": KWOK_API, "kind": "Exec", "metadata": metadata,
                              "spec": {"execs": execs}})
        kube.apply(self.api, {"apiVersion": KWOK_API, "kind": "Logs", "metadata": metadata,
                              "spec": {"logs": logs}})
        if forwards:
            kube.apply(self.api, {"apiVersion": KWOK_API, "kind": "PortForward", "metadata": metadata,
                                  "spec": {"forwards": [{"ports": [int(port)], "command": relay_command(target)}
                                                        for port, target in forwards.items()]}})
        self.core.patch_namespaced_pod(meta.name, meta.namespace,
                                       {"metadata": {"annotations": {SANDBOX_ANNOTATION: "ready"}}})
        log.info("sandboxed pod %s/%s", meta.namespace, meta.name)


def status_report(pod: dict, resources: bool, emulator: tuple[str, bool, int] | None, now: str,
                  blocked: bool = False, resize_pending: tuple[str, str] | None = None) -> dict | None:
    """The status patch a kubelet would send for ``pod`` (a manifest), or None if its status says it all.

    - ``blocked``: the pod cannot have its volumes: no container is ready, nor the pod.
    - ``resize_pending``: (reason, message) of a resize not admitted (Deferred, Infeasible): the
      containers keep reporting what they run with, and the pod says why in ``PodResizePending``.
    - ``resources``: each running container reports the resources it was given, as a kubelet
      that resizes in place does once it has applied them (nothing limits them here).
    - ``emulator``: (container, ready, restarts) of the emulator run here for the pod: its
      readiness probe's verdict becomes the container's ``ready`` and the pod's Ready and
      ContainersReady conditions, its restarts the ``restartCount``.
    """
    status = pod.get("status") or {}
    statuses = copy.deepcopy(status.get("containerStatuses") or [])
    given = {container["name"]: container.get("resources") for container in pod["spec"]["containers"]}
    changed = False
    for entry in statuses:
        if "running" not in (entry.get("state") or {}):
            continue
        admitted = resize_pending is None or "resources" not in entry  # the first report is the admission's
        if resources and admitted and given.get(entry["name"]) and entry.get("resources") != given[entry["name"]]:
            entry["resources"] = given[entry["name"]]
            changed = True
        probed = emulator and entry["name"] == emulator[0]
        if probed and (entry.get("ready"), entry.get("restartCount")) != emulator[1:]:
            entry["ready"], entry["restartCount"] = emulator[1:]
            changed = True
        if blocked and entry.get("ready") is not False:
            entry["ready"] = False
            changed = True
    report = {"containerStatuses": statuses} if changed else {}
    conditions = copy.deepcopy(status.get("conditions") or [])
    kept = [c for c in conditions if c["type"] != "PodResizePending"]
    if resize_pending is not None:
        reason, message = resize_pending
        kept.append({"type": "PodResizePending", "status": "True", "reason": reason, "message": message,
                     "lastTransitionTime": next((c.get("lastTransitionTime") for c in conditions
                                                 if c["type"] == "PodResizePending" and c.get("reason") == reason
                                                 and c.get("message") == message), now)})
    if kept != conditions:
        report["conditions"] = kept
    if emulator or blocked:
        wanted = "True" if emulator and emulator[1] and not blocked else "False"
        conditions = report.get("conditions") or copy.deepcopy(status.get("conditions") or [])
        flipped = [c for c in conditions if c["type"] in ("Ready", "ContainersReady") and c.get("status") != wanted]
        for condition in flipped:
            condition.update(status=wanted, lastTransitionTime=now)
        if flipped:
            report["conditions"] = conditions  # whole: a merge patch replaces lists
    return report or None


def container_cpu(container: dict, kind: str) -> int:
    return cpu_millis(((container.get("resources") or {}).get(kind) or {}).get("cpu")) or 0


def cpu_in_use(pods: list[dict]) -> dict[str, int]:
    """Node -> the CPU requests its live pods run with (what their containers report, else their
    spec), millicores: what the kubelet counts before admitting a resize."""
    used: dict[str, int] = {}
    for pod in pods:
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        reported = {s["name"]: s for s in status.get("containerStatuses") or [] if s.get("resources")}
        node = pod["spec"].get("nodeName")
        for container in pod["spec"]["containers"]:
            source = reported.get(container["name"], container)
            used[node] = used.get(node, 0) + container_cpu(source, "requests")
    return used


def resize_verdict(pod: dict, node_cpu: int, node_used: int) -> tuple[str, str] | None:
    """Whether a kubelet would admit the resize ``pod`` asks for: None (nothing asked, or admitted),
    or (``Infeasible``/``Deferred``, why), as ``PodResizePending`` says it.  ``node_cpu`` is the
    node's allocatable CPU and ``node_used`` what all its pods (this one included) run with."""
    reported = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []
                if s.get("resources")}
    asked = running = 0
    for container in pod["spec"]["containers"]:
        if container["name"] not in reported:
            continue
        asked += container_cpu(container, "requests")
        running += container_cpu(reported[container["name"]], "requests")
    if asked <= running or not node_cpu:
        return None  # nothing more asked (lowering always fits), or a node that says nothing of its CPU
    if asked > node_cpu:
        return "Infeasible", f"Node didn't have enough capacity: cpu, requested: {asked}m, capacity: {node_cpu}m"
    if node_used - running + asked > node_cpu:
        return "Deferred", (f"Node didn't have enough resource: cpu, requested: {asked}m, used: "
                            f"{node_used - running}m, capacity: {node_cpu}m")
    return None


def _cgroups() -> tuple[CgroupFs | None, str]:
    """Where the agent puts each local emulator's cgroup, or None and why it cannot."""
    try:
        return CgroupFs.detect(name="loco-lan-agent"), ""
    except LocoError as exc:
        log.warning("local emulators run without CPU limits: %s", exc)
        return None, str(exc)


def port_forwards(text: str | None) -> dict[str, str]:
    """The ``loco.lan/port-forward`` annotation: ``{"<pod port>": "<host>:<port>"}``; LocoError if malformed."""
    if not text:
        return {}
    try:
        forwards = json.loads(text)
    except ValueError as exc:
        raise LocoError(f"not JSON ({exc})") from None
    if not isinstance(forwards, dict):
        raise LocoError('not a JSON object such as {"5901": "127.0.0.1:15901"}')
    for port, target in forwards.items():
        host, _, target_port = str(target).rpartition(":")
        if not (_valid_port(port) and host and _valid_port(target_port)):
            raise LocoError(f"{port!r}: {target!r} is not <pod port>: <host>:<port>")
    return {str(int(port)): str(target) for port, target in forwards.items()}


def relay_command(target: str) -> list[str]:
    """What kwok runs for each port-forwarded connection: socat between the stream and ``target``
    (``host:port``).  kwok's own ``target`` keeps the connection to the pod's port open after
    the client has gone, until that port closes it: a server taking one client at a time (QEMU's
    serial, the guest channel) then answers nobody again.  socat, as a kubelet's CRI does, closes
    the pod's side a second after the client's (``-t 1``)."""
    socat = shutil.which("socat")
    if socat is None:
        raise LocoError("socat not found: the local cluster's port-forwards need it (scripts/setup.sh installs it)")
    host, _, port = target.rpartition(":")
    return [socat, "-t", "1", "-", f"TCP:{host}:{port}"]


def _valid_port(text) -> bool:
    return isinstance(text, str) and text.isdigit() and 0 < int(text) < 65536


def claim_users(pods) -> dict[str, list]:
    """``"namespace/claim"`` -> the live pods mounting it, oldest first (who attached it first)."""
    users: dict[str, list] = {}
    for pod in sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name)):
        if pod.metadata.deletion_timestamp or pod.status.phase in ("Succeeded", "Failed"):
            continue
        for volume in pod.spec.volumes or []:
            if volume.persistent_volume_claim:
                users.setdefault(f"{pod.metadata.namespace}/{volume.persistent_volume_claim.claim_name}",
                                 []).append(pod)
    return users


def check_attach(pod, volume: str, modes: list[str], users: list) -> None:
    """Refuse ``pod`` a volume its access modes keep for the pod(s) that attached it first."""
    if not users or users[0].metadata.uid == pod.metadata.uid:
        return
    first = users[0]
    if modes == ["ReadWriteOncePod"]:
        raise VolumeRefused("FailedMount", f"volume {volume} is ReadWriteOncePod and already used by pod "
                                           f"{first.metadata.name}")
    if set(modes) <= SINGLE_NODE_MODES and pod.spec.node_name != first.spec.node_name:
        holders = ", ".join(sorted(p.metadata.name for p in users if p.spec.node_name == first.spec.node_name))
        raise VolumeRefused("FailedAttachVolume", f'Multi-Attach error for volume "{volume}": it is '
                            f"ReadWriteOnce and already used by pod(s) {holders} on node {first.spec.node_name}")


def mount_tmpfs(path: Path, size: int) -> None:
    """Give a volume a filesystem of its own, ``size`` bytes, so writing past it fails with ENOSPC."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise LocoError(f"cannot mount a {size}-byte tmpfs at {path}: {done.stderr.strip()}")


def copy_tree(source: Path, dest: Path) -> None:
    """A clone's content: the source volume's files (reflinked where the filesystem can)."""
    subprocess.run(["cp", "-a", "--reflink=auto", f"{source}/.", str(dest)], check=True, capture_output=True)


def remove_volume_dir(path: Path) -> None:
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def volume_files(data: dict[str, bytes], items) -> dict[str, bytes]:
    """The files of a Secret or ConfigMap volume: one per key, or the listed ``items`` at their paths."""
    if not items:
        return dict(data)
    return {item.path: data[item.key] for item in items if item.key in data}


def log_note(path: Path, text: str) -> None:
    """Append a line to a container log, in the CRI format kwok parses for ``kubectl logs``."""
    with open(path, "ab") as out:
        out.write(localemu.cri_lines(f"{text}\n".encode(), localemu.cri_timestamp())[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Agent(kube.api_client(args.kubeconfig), args.state_dir).run()


if __name__ == "__main__":
    main()
