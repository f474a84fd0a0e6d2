"""Disk upload into a PVC: loco.lan's uploader vs ``kubectl cp`` of the same file to a pod
mounting a PVC, on the same local cluster in the same run.

Ours includes everything a user waits for: the uploader pod, the transfer and the
sha256 verification inside the cluster, timed twice: as bootstrap runs it (the
snapshot's verified digest is handed on, so the disk is not hashed here) and with
no digest given (it is hashed here while sending).  ``kubectl cp`` only copies.

    python bench/bench_upload.py [--size-mib 512]
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client

from loco_lan import kube
from loco_lan.cluster.local import LocalCluster
from loco_lan.cluster.tools import Toolbox
from loco_lan.diskupload import DiskUploader, UploadRequest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        root = Path(tmp)
        image = root / "disk.img"
        with open(image, "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(1 << 20))
        size = image.stat().st_size
        cluster = LocalCluster("bench-upload", state_root=root / "clusters", nodes=1)
        cluster.up()
        try:
            api = cluster.api()
            core = client.CoreV1Api(api)
            core.create_namespaced_persistent_volume_claim("default", {
                "metadata": {"name": "cp-target"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}})
            core.create_namespaced_pod("default", {
                "metadata": {"name": "cp-pod", "labels": {"app": "cp-pod"}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                                         "volumeMounts": [{"name": "d", "mountPath": "/disk"}]}],
                         "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "cp-target"}}]}})
            kube.wait_pods_ready(api, "default", "app=cp-pod", 1, timeout=120)
            time.sleep(2)  # let the agent give the pod its exec sandbox
            kubectl = [Toolbox().binary("kubectl"), "--kubeconfig", str(cluster.kubeconfig)]

            start = time.monotonic()
            subprocess.run([*kubectl, "cp", str(image), "default/cp-pod:/disk/disk.img"], check=True)
            peer = time.monotonic() - start

            sha256 = hashlib.sha256(image.read_bytes()).hexdigest()  # what the snapshot record holds

            def upload(pvc: str, **extra) -> float:
                start = time.monotonic()
                result = DiskUploader(api, UploadRequest(image=image, pvc=pvc, namespace="default", **extra)).run()
                assert result.sent == size and result.sha256 == sha256
                return time.monotonic() - start

            ours = upload("ours", expected_sha256=sha256)
            ours_hashing = upload("ours-hashing")
        finally:
            cluster.down()
    mib = size / (1 << 20)
    print(f"image {mib:.0f} MiB")
    print(f"kubectl cp:           {peer:6.1f} s  {mib / peer:7.1f} MiB/s")
    print(f"loco disk upload:     {ours:6.1f} s  {mib / ours:7.1f} MiB/s "
          "(pod start, sha256 in the cluster; digest from the snapshot, as bootstrap runs it)")
    print(f"  hashing here too:   {ours_hashing:6.1f} s  {mib / ours_hashing:7.1f} MiB/s (no digest given)")
    print(f"ratio ours/kubectl cp: {peer / ours:.2f}x throughput ({peer / ours_hashing:.2f}x with no digest given)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
