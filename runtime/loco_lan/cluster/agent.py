"""The local cluster's node agent: what a kubelet and a CSI driver would do.

Runs beside kwok and reconciles, every half second:
- PersistentVolumeClaims of the ``loco.lan/hostpath`` storage class get a
  hostPath PersistentVolume under ``<state>/volumes`` (any access mode,
  ReadOnlyMany included); released volumes are deleted with their directory.
- Pods on kwok nodes get kwok ``Exec``/``Logs``/``PortForward`` resources so
  ``kubectl exec``/``cp`` see the pod's volumes (see sandbox.py), ``kubectl
  logs`` reads a file, and ``kubectl port-forward`` reaches the local address
  named in the pod's ``loco.lan/port-forward`` annotation (``{"5901":
  "127.0.0.1:15901"}``).  The pod is then annotated ``loco.lan/sandbox: ready``.
"""

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.cluster import sandbox
from loco_lan.cluster.local import PROVISIONER

log = logging.getLogger("loco.agent")
KWOK_API = "kwok.x-k8s.io/v1alpha1"
SANDBOX_ANNOTATION = "loco.lan/sandbox"
FORWARD_ANNOTATION = "loco.lan/port-forward"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


class Agent:
    def __init__(self, api: client.ApiClient, state_dir: Path):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.volumes = state_dir / "volumes"
        self.pods = state_dir / "pods"
        self.done: dict[str, str] = {}  # pod uid -> port-forward annotation it was sandboxed with

    def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                self.reconcile()
            except Exception:  # keep serving; the next pass retries
                log.exception("reconcile failed")
            time.sleep(interval)

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
        live = set()
        for pod in self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items:
            uid = pod.metadata.uid
            live.add(uid)
            forwards = (pod.metadata.annotations or {}).get(FORWARD_ANNOTATION, "")
            if pod.metadata.deletion_timestamp or self.done.get(uid) == forwards:
                continue
            mounts = self.pod_mounts(pod)
            if mounts is None:
                continue
            self.sandbox_pod(pod, mounts)
            self.done[uid] = forwards
        for stale in set(self.done) - live:
            del self.done[stale]
            shutil.rmtree(self.pods / stale, ignore_errors=True)

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

    def sandbox_pod(self, pod, mounts: dict[str, list[sandbox.Mount]]) -> None:
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
            if not log_file.exists():
                log_file.write_text(f"{container}: simulated by kwok on {pod.spec.node_name}\n")
            logs.append({"containers": [container], "logsFile": str(log_file)})
        metadata = {"name": meta.name, "namespace": meta.namespace, "ownerReferences": owner}
        kube.apply(self.api, {"apiVersion": KWOK_API, "kind": "Exec", "metadata": metadata,
                              "spec": {"execs": execs}})
        kube.apply(self.api, {"apiVersion": KWOK_API, "kind": "Logs", "metadata": metadata,
                              "spec": {"logs": logs}})
        forwards = json.loads((meta.annotations or {}).get(FORWARD_ANNOTATION, "{}"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Agent(kube.api_client(args.kubeconfig), args.state_dir).run()


if __name__ == "__main__":
    main()
