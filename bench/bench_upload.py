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
import statistics
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
    parser.add_argument("--runs", type=int, default=3)
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
            sha256 = hashlib.sha256(image.read_bytes()).hexdigest()  # what the snapshot record holds

            def kubectl_cp(run: int) -> float:
                os.sync()  # each side starts with no writeback of the one before it pending
                start = time.monotonic()
                subprocess.run([*kubectl, "cp", str(image), f"default/cp-pod:/disk/disk-{run}.img"], check=True)
                return time.monotonic() - start

            def upload(pvc: str, **extra) -> tuple[float, float]:
                """Seconds in all, and seconds from the first byte sent to the end."""
                stream = Stream()
                os.sync()
                start = time.monotonic()
                request = UploadRequest(image=image, pvc=pvc, namespace="default", **extra)
                result = DiskUploader(api, request, progress=stream).run()
                end = time.monotonic()
                assert result.sent == size and result.sha256 == sha256
                return end - start, end - stream.first

            peer, ours, ours_stream, hashing = [], [], [], []
            for run in range(args.runs):  # interleaved, so a busier moment does not favour one side
                if run % 2:  # and in turn first, so neither always meets the page cache the other left
                    peer.append(kubectl_cp(run))
                total, streaming = upload(f"ours-{run}", expected_sha256=sha256)
                ours.append(total)
                ours_stream.append(streaming)
                hashing.append(upload(f"hashing-{run}")[0])
                if not run % 2:
                    peer.append(kubectl_cp(run))
        finally:
            cluster.down()
    peer, ours, ours_stream, hashing = (statistics.median(x) for x in (peer, ours, ours_stream, hashing))
    mib = size / (1 << 20)
    print(f"image {mib:.0f} MiB, median of {args.runs} interleaved runs")
    print(f"kubectl cp (pod already running): {peer:6.2f} s  {mib / peer:7.1f} MiB/s")
    print(f"loco disk upload, as bootstrap:   {ours:6.2f} s  {mib / ours:7.1f} MiB/s "
          "(uploader pod start, stream, sha256 in the cluster; digest handed on from the snapshot)")
    print(f"  of which from the first byte:   {ours_stream:6.2f} s  {mib / ours_stream:7.1f} MiB/s")
    print(f"  with no digest given:           {hashing:6.2f} s  {mib / hashing:7.1f} MiB/s (hashed here too)")
    print(f"ratio ours/kubectl cp: {peer / ours:.2f}x throughput in all, {peer / ours_stream:.2f}x from the first "
          f"byte, {peer / hashing:.2f}x with no digest given")
    print(f"goal >= 0.80x: {'met' if peer / ours >= 0.8 else 'NOT met'} ({peer / ours:.2f}x in all)")
    return 0


class Stream:
    """Progress sink noting when the first byte went out."""

    first = 0.0

    def reset(self, offset: int) -> None:
        pass

    def update(self, count: int) -> None:
        self.first = self.first or time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
