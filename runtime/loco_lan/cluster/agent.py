"""The local cluster's node agent: what a kubelet and a CSI driver would do.

Runs beside kwok and reconciles at once when a pod or claim changes (watched),
and every half second anyway:
- PersistentVolumeClaims of the ``loco.lan/hostpath`` storage class get a
  hostPath PersistentVolume under ``<state>/volumes`` (any access mode,
  ReadOnlyMany included); released volumes are deleted with their directory.
- Pods on kwok nodes get kwok ``Exec``/``Logs``/``PortForward`` resources so
  ``kubectl exec``/``cp`` see the pod's volumes (claims, emptyDirs, hostPaths,
  Secrets and ConfigMaps written out as files; see sandbox.py), ``kubectl
  logs`` reads a file, and ``kubectl port-forward`` reaches the local address
  named in the pod's ``loco.lan/port-forward`` annotation (``{"5901":
  "127.0.0.1:15901"}``).  The pod is then annotated ``loco.lan/sandbox: ready``.
- Running containers report the resources they were given in the pod status,
  as a kubelet that resizes in place does, so the API server accepts
  ``pods/resize``.  Pods annotated ``loco.lan/in-place-resize: "false"`` are
  left without, like pods of a kubelet that cannot resize.
- Pods annotated ``loco.lan/run-local: emulator`` get a real emulator process on
  this machine, its VNC and health ports forwarded as the pod's 5901 and 8080
  (see localemu.py).  Like a kubelet's readiness probe, the emulator's /health
  decides the pod's Ready condition; its restarts count in ``restartCount``.
  The emulators stop with their pods and with the agent.
"""

import argparse
import base64
import copy
import json
import logging
import shutil
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.cluster import localemu, sandbox
from loco_lan.cluster.local import PROVISIONER
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write

log = logging.getLogger("loco.agent")
KWOK_API = "kwok.x-k8s.io/v1alpha1"
SANDBOX_ANNOTATION = "loco.lan/sandbox"
FORWARD_ANNOTATION = "loco.lan/port-forward"
RESIZE_ANNOTATION = "loco.lan/in-place-resize"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


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
                for _ in watch.Watch().stream(list_call, timeout_seconds=300):
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
        for pvc in self.core.list_persistent_volume_claim_for_all_namespaces().items:
            pending = not pvc.spec.volume_name and not pvc.metadata.deletion_timestamp
            if pending and pvc.spec.storage_class_name in ours:
                self.create_volume(pvc, ours[pvc.spec.storage_class_name])
        for pv in self.core.list_persistent_volume().items:
            annotations = pv.metadata.annotations or {}
            if (annotations.get(PROVISIONED_BY) == PROVISIONER and pv.status.phase == "Released"
                    and pv.spec.persistent_volume_reclaim_policy == "Delete"):
                shutil.rmtree(pv.spec.host_path.path, ignore_errors=True)
                self.core.delete_persistent_volume(pv.metadata.name)
                log.info("deleted volume %s", pv.metadata.name)

    def create_volume(self, pvc, storage_class) -> None:
        name = f"pvc-{pvc.metadata.uid}"
        path = self.volumes / name
        path.mkdir(parents=True, exist_ok=True)
        body = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc.spec.resources.requests["storage"]},
                "accessModes": pvc.spec.access_modes,
                "persistentVolumeReclaimPolicy": storage_class.reclaim_policy or "Delete",
                "storageClassName": storage_class.metadata.name,
                "volumeMode": pvc.spec.volume_mode or "Filesystem",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": pvc.metadata.namespace, "name": pvc.metadata.name,
                             "uid": pvc.metadata.uid},
            },
        }
        try:
            self.core.create_persistent_volume(body)
            log.info("provisioned %s for %s/%s at %s", name, pvc.metadata.namespace, pvc.metadata.name, path)
        except ApiException as exc:
            if exc.status != 409:
                raise

    # -- pods ----------------------------------------------------------
    def sandbox_pods(self) -> None:
        live, running = set(), set()
        for pod in self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items:
            uid = pod.metadata.uid
            live.add(uid)
            if pod.metadata.deletion_timestamp:
                continue
            running.add(uid)
            annotations = pod.metadata.annotations or {}
            if annotations.get(localemu.RUN_ANNOTATION) == "emulator" and uid not in self.emulators:
                self.add_emulator(pod)
            self.report_status(pod, annotations)
            # An explicit annotation wins over the local emulator's ports.
            explicit = json.loads(annotations.get(FORWARD_ANNOTATION, "{}"))
            forwards = {**self.emulators.forwards(uid), **explicit}
            if self.done.get(uid) == forwards:
                continue
            mounts = self.pod_mounts(pod)
            if mounts is None:
                continue
            self.sandbox_pod(pod, mounts, forwards)
            self.done[uid] = forwards
        self.emulators.keep(running)
        self.emulators.tend()
        for stale in set(self.done) - live:
            del self.done[stale]
            self.refused.pop(stale, None)
            shutil.rmtree(self.pods / stale, ignore_errors=True)

    def report_status(self, pod, annotations: dict) -> None:
        """Send what a kubelet would say of this pod's containers (see ``status_report``)."""
        emulator = self.emulators.get(pod.metadata.uid)
        report = status_report(
            self.api.sanitize_for_serialization(pod), resources=annotations.get(RESIZE_ANNOTATION) != "false",
            emulator=(emulator.container, emulator.ready(), emulator.exits) if emulator else None,
            now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if report is None:
            return
        # The resourceVersion makes this lose, not win, against kwok's own status updates.
        patch = {"metadata": {"resourceVersion": pod.metadata.resource_version}, "status": report}
        try:
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, patch)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or changed since listed: the next pass sees it
                raise

    def add_emulator(self, pod) -> None:
        """Start the pod's emulator here, once its volumes are bound and its env resolves."""
        mounts = self.pod_mounts(pod)
        if mounts is None:
            return
        meta, manifest = pod.metadata, self.api.sanitize_for_serialization(pod)
        container = localemu.emulator_container(manifest)["name"]
        pod_dir, name = self.pods / meta.uid, f"{meta.namespace}/{meta.name}"
        log_file = pod_dir / f"{container}.log"
        try:
            env = localemu.emulator_env(manifest, mounts[container], pod_dir,
                                        lambda kind, ref, key: self.lookup(meta.namespace, kind, ref, key))
        except LocoError as exc:  # what a kubelet reports as CreateContainerConfigError
            if self.refused.get(meta.uid) != str(exc):
                self.refused[meta.uid] = str(exc)
                log.warning("cannot run the emulator of %s: %s", name, exc)
                pod_dir.mkdir(parents=True, exist_ok=True)
                log_note(log_file, f"loco agent: cannot run the emulator: {exc}")
            return
        self.emulators.add(meta.uid, name, container, env, log_file)

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
        """Host directories for each container's volume mounts, or None while a claim is unbound."""
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
                sources[volume.name] = (host.path, bool(volume.persistent_volume_claim.read_only))
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
                                  "spec": {"forwards": [
                                      {"ports": [int(port)], "target": {
                                          "address": target.rsplit(":", 1)[0],
                                          "port": int(target.rsplit(":", 1)[1])}}
                                      for port, target in forwards.items()]}})
        self.core.patch_namespaced_pod(meta.name, meta.namespace,
                                       {"metadata": {"annotations": {SANDBOX_ANNOTATION: "ready"}}})
        log.info("sandboxed pod %s/%s", meta.namespace, meta.name)


def status_report(pod: dict, resources: bool, emulator: tuple[str, bool, int] | None, now: str) -> dict | None:
    """The status patch a kubelet would send for ``pod`` (a manifest), or None if its status says it all.

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
        if resources and given.get(entry["name"]) and entry.get("resources") != given[entry["name"]]:
            entry["resources"] = given[entry["name"]]
            changed = True
        probed = emulator and entry["name"] == emulator[0]
        if probed and (entry.get("ready"), entry.get("restartCount")) != emulator[1:]:
            entry["ready"], entry["restartCount"] = emulator[1:]
            changed = True
    report = {"containerStatuses": statuses} if changed else {}
    if emulator:
        wanted = "True" if emulator[1] else "False"
        conditions = copy.deepcopy(status.get("conditions") or [])
        flipped = [c for c in conditions if c["type"] in ("Ready", "ContainersReady") and c.get("status") != wanted]
        for condition in flipped:
            condition.update(status=wanted, lastTransitionTime=now)
        if flipped:
            report["conditions"] = conditions  # whole: a merge patch replaces lists
    return report or None


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
