"""Put a disk image into a PersistentVolumeClaim through the Kubernetes API.

The flow: ensure the PVC (sized from the image plus headroom), start a
short-lived uploader pod mounting it, stream the image over ``exec`` stdin into
a part file named after the image's sha256, verify the sha256 inside the
cluster, rename the part over the final name and record the digest as a PVC
annotation.  A later run with the same image finds the annotation and sends
nothing; an interrupted run resumes from the part file's size; a digest
mismatch deletes the part and leaves the final name untouched.
"""

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.errors import LocoError

log = logging.getLogger(__name__)
SHA_ANNOTATION = "loco.lan/disk-sha256"
FILE_ANNOTATION = "loco.lan/disk-file"
SIZE_ANNOTATION = "loco.lan/disk-size"
MOUNT = "/disk"
CHUNK = 1 << 20
# How the uploader hashes a file, by the tool its image has: OpenSSL uses the CPU's SHA
# instructions (4x busybox's or coreutils' sha256sum here).  Both print the hex digest first.
HASH_FILE = {"openssl": "openssl dgst -sha256 -r", "sha256sum": "sha256sum"}
MIB = 1 << 20
_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
          "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_quantity(quantity: str) -> int:
    """Bytes in a Kubernetes storage quantity such as ``4Gi`` or ``500M``."""
    text = str(quantity).strip()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * _UNITS[suffix])
    return int(float(text))


def required_bytes(image_size: int, headroom: float = 0.1) -> int:
    """PVC size for an image: the image, ``headroom`` on top and 64 MiB for the filesystem, in MiB."""
    return math.ceil((image_size * (1 + headroom) + 64 * MIB) / MIB) * MIB


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


@dataclass
class UploadRequest:
    image: Path
    pvc: str
    namespace: str
    file_name: str = "win98.qcow2"
    storage_class: str | None = None
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    size: str | None = None
    headroom: float = 0.1
    uploader_image: str = "docker.io/library/busybox:1.36"
    expected_sha256: str | None = None
    timeout: float = 300.0
    retries: int = 3

    def __post_init__(self):
        if self.expected_sha256:
            hexdigest = self.expected_sha256.strip().lower().removeprefix("sha256:")
            if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
                raise LocoError(f"expected_sha256 {self.expected_sha256!r} is not a sha256 digest "
                                "(64 hex digits, optionally after 'sha256:')")
            self.expected_sha256 = hexdigest


@dataclass
class UploadResult:
    action: str  # uploaded | current | would-upload
    sha256: str
    size: int
    pvc: str
    pvc_created: bool
    previous_sha256: str | None = None
    resumed_from: int = 0
    sent: int = 0

    @property
    def changed(self) -> bool:
        return self.action != "current"

    def as_dict(self) -> dict:
        return {**asdict(self), "changed": self.changed}


def append_script(part: str, offset: int, hasher: str) -> tuple[str, bool]:
    """The uploader's script appending stdin to ``part``, and whether it prints the sha256 of
    the stream.  A slow sha256sum hashes the stream as it lands, overlapping the transfer
    (only possible from byte 0); OpenSSL rereads the written file in less time than a tee costs."""
    if offset == 0 and hasher == "sha256sum":
        return f"tee -a '{part}' | sha256sum", True
    return f"cat >> '{part}'", False


class DiskUploader:
    def __init__(self, api: client.ApiClient, request: UploadRequest, progress=None):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.req = request
        self.progress = progress
        self.pod = f"{request.pvc}-upload"[:63]
        self.hasher = "sha256sum"  # until the uploader says it has openssl

    # -- planning ------------------------------------------------------
    def run(self, check_mode: bool = False) -> UploadResult:
        req = self.req
        if not req.image.is_file():
            raise LocoError(f"disk image {req.image} does not exist")
        size = req.image.stat().st_size
        claim = self._claim()
        annotations = (claim.metadata.annotations or {}) if claim is not None else {}
        previous = annotations.get(SHA_ANNOTATION)
        # Hash up front only when there is something to compare with; otherwise while sending.
        sha = req.expected_sha256 or (file_sha256(req.image) if previous or check_mode else None)
        if claim is not None:
            self._check_capacity(claim, size)
            if previous == sha and annotations.get(FILE_ANNOTATION) == req.file_name:
                return UploadResult("current", sha, size, req.pvc, pvc_created=False, previous_sha256=previous)
        if check_mode:
            return UploadResult("would-upload", sha, size, req.pvc, pvc_created=claim is None,
                                previous_sha256=previous)
        if claim is None:
            self._create_claim(size)
        try:
            self._start_uploader()
            resumed, sent, local_sha, remote_sha = self._send(size, hash_locally=sha is None)
            sha = sha or local_sha
            self._verify_and_install(sha, remote_sha)
        finally:
            self._delete_uploader()
        self.core.patch_namespaced_persistent_volume_claim(req.pvc, req.namespace, {"metadata": {"annotations": {
            SHA_ANNOTATION: sha, FILE_ANNOTATION: req.file_name, SIZE_ANNOTATION: str(size)}}})
        return UploadResult("uploaded", sha, size, req.pvc, pvc_created=claim is None, previous_sha256=previous,
                            resumed_from=resumed, sent=sent)

    def _claim(self):
        try:
            return self.core.read_namespaced_persistent_volume_claim(self.req.pvc, self.req.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _check_capacity(self, claim, image_size: int) -> None:
        capacity = (claim.status.capacity or {}).get("storage") or claim.spec.resources.requests["storage"]
        if parse_quantity(capacity) < image_size:
            raise LocoError(f"PVC {self.req.namespace}/{self.req.pvc} holds {capacity} but the image is "
                            f"{image_size} bytes; use a new PVC name or a larger size")

    def _create_claim(self, image_size: int) -> None:
        req = self.req
        storage = client.StorageV1Api(self.api)
        if req.storage_class:
            try:
                storage.read_storage_class(req.storage_class)
            except ApiException as exc:
                if exc.status == 404:
                    raise LocoError(f"storage class {req.storage_class!r} does not exist") from exc
                raise
        elif not any((sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
                     for sc in storage.list_storage_class().items):
            raise LocoError("the cluster has no default storage class; set a storage class")
        wanted = max(required_bytes(image_size, req.headroom), parse_quantity(req.size) if req.size else 0)
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": req.pvc, "namespace": req.namespace,
                             "labels": {"app.kubernetes.io/name": "loco-lan",
                                        "app.kubernetes.io/component": "disk"}},
                "spec": {"accessModes": list(req.access_modes),
                         "resources": {"requests": {"storage": f"{wanted // MIB}Mi"}}}}
        if req.storage_class:
            body["spec"]["storageClassName"] = req.storage_class
        self.core.create_namespaced_persistent_volume_claim(req.namespace, body)
        log.info("created PVC %s/%s (%d MiB)", req.namespace, req.pvc, wanted // MIB)

    # -- uploader pod --------------------------------------------------
    def _start_uploader(self) -> None:
        req = self.req
        self._delete_uploader()
        self.core.create_namespaced_pod(req.namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.pod, "labels": {"app.kubernetes.io/name": "loco-lan",
                                                       "app.kubernetes.io/component": "disk-upload",
                                                       "loco.lan/upload": req.pvc}},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": 6 * 3600,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "upload", "image": req.uploader_image, "command": ["sleep", "21600"],
                                "volumeMounts": [{"name": "disk", "mountPath": MOUNT}]}],
                "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": req.pvc}}],
            },
        })
        kube.wait_pods_ready(self.api, req.namespace, f"loco.lan/upload={req.pvc}", 1, timeout=req.timeout)

    def _delete_uploader(self) -> None:
        try:
            self.core.delete_namespaced_pod(self.pod, self.req.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.core.read_namespaced_pod(self.pod, self.req.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(0.2)

    def _sh(self, script: str, stdin=None, retries: int = 15) -> str:
        """Run a shell script in the uploader; exec can be refused for a moment after the pod turns
        ready, so it is retried: soon at first (a ready pod usually takes exec within a second),
        every 2 s later, about 20 s in all."""
        for attempt in range(retries):
            try:
                result = kube.exec_command(self.api, self.req.namespace, self.pod, ["sh", "-c", script],
                                           stdin=stdin, timeout=max(self.req.timeout, 3600))
                break
            except (ApiException, LocoError) as exc:
                if stdin is not None or attempt == retries - 1:
                    raise LocoError(f"exec in {self.req.namespace}/{self.pod} failed: {exc}") from exc
                time.sleep(min(0.1 * 2**attempt, 2.0))
        if result.returncode:
            raise LocoError(f"`{script}` in {self.pod} exited {result.returncode}: "
                            f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode()

    # -- transfer ------------------------------------------------------
    def part_path(self) -> str:
        """The part file: named after the image's size and mtime, so only the same image resumes it."""
        stat = self.req.image.stat()
        return f"{MOUNT}/.{self.req.file_name}.{stat.st_size:x}-{stat.st_mtime_ns:x}.part"

    def _send(self, size: int, hash_locally: bool) -> tuple[int, int, str | None, str | None]:
        """Append the image to the part file from wherever it stops.

        Returns (resumed_from, bytes sent, local sha256 (None unless ``hash_locally``), sha256
        the cluster computed of the stream as it landed, or None when the part file must be
        hashed whole: it was resumed, or OpenSSL does that faster).
        """
        part = self.part_path()
        # Parts of other images cannot be resumed: remove them.  And which sha256 tool is there?
        self.hasher = self._sh(
            f"for f in {MOUNT}/.{self.req.file_name}.*.part; do [ \"$f\" = '{part}' ] || rm -f \"$f\"; done; "
            "if command -v openssl >/dev/null; then echo openssl; else echo sha256sum; fi").strip()
        resumed = sent = 0
        for attempt in range(self.req.retries + 1):
            offset = int(self._sh(f"if [ -f '{part}' ]; then wc -c < '{part}'; else echo 0; fi").strip() or 0)
            if offset > size:
                self._sh(f"rm -f '{part}'")
                offset = 0
            if attempt == 0:
                resumed = offset
            if self.progress:
                self.progress.reset(offset)
            digest = hashlib.sha256() if hash_locally else None
            if offset == size:
                return resumed, sent, file_sha256(self.req.image) if hash_locally else None, None
            try:
                script, overlap = append_script(part, offset, self.hasher)
                out = self._sh(script, stdin=self._chunks(offset, digest))
                sent += size - offset
                local = digest.hexdigest() if digest else None
                return resumed, sent, local, out.split()[0] if overlap else None
            except LocoError as exc:
                if attempt == self.req.retries:
                    raise
                log.warning("upload interrupted at attempt %d (%s); resuming", attempt + 1, exc)
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def _chunks(self, offset: int, digest) -> Iterator[bytes]:
        """The image from ``offset`` in chunks; ``digest``, if any, is fed the whole file, prefix included."""
        with open(self.req.image, "rb") as handle:
            remaining = offset
            while digest and remaining and (chunk := handle.read(min(CHUNK, remaining))):
                digest.update(chunk)
                remaining -= len(chunk)
            handle.seek(offset)
            while chunk := handle.read(CHUNK):
                if digest:
                    digest.update(chunk)
                if self.progress:
                    self.progress.update(len(chunk))
                yield chunk

    def _verify_and_install(self, sha: str, received_sha: str | None) -> None:
        part = self.part_path()
        final = f"{MOUNT}/{self.req.file_name}"
        found = received_sha or self._sh(f"{HASH_FILE[self.hasher]} '{part}'").split()[0]
        if found != sha:
            self._sh(f"rm -f '{part}'")
            raise LocoError(f"sha256 of the uploaded image in the cluster is {found}, expected {sha}; "
                            f"the part file was removed and {self.req.file_name} left as it was")
        self._sh(f"mv -f '{part}' '{final}' && echo '{sha}  {self.req.file_name}' > '{final}.sha256'")
