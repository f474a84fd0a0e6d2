"""Put a disk image into a PersistentVolumeClaim through the Kubernetes API.

The flow: ensure the PVC (a writable access mode, room for the new image beside
the old one), start a short-lived uploader pod mounting it, check the volume has
room, stream the image over ``exec`` stdin into a part file, fsync it, hash the
part file as it lies on the volume, rename it over the final name and record the
digest as a PVC annotation.  A later run with the same image finds the
annotation and sends nothing; an interrupted run resumes from the part file's
size; a failed write (the volume full) or a digest mismatch deletes the part and
leaves the previous image in place.

The uploader's scripts take every path as a positional argument (``"$1"``), never
spliced into the script text.
"""

import contextlib
import hashlib
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.errors import LocoError
from loco_lan.fsutil import file_sha256
from loco_lan.kube import parse_quantity

log = logging.getLogger(__name__)
SHA_ANNOTATION = "loco.lan/disk-sha256"
FILE_ANNOTATION = "loco.lan/disk-file"
SIZE_ANNOTATION = "loco.lan/disk-size"
MOUNT = "/disk"
CHUNK = 1 << 20
# How the uploader hashes a file, by the tool its image has: OpenSSL uses the CPU's SHA
# instructions (4x busybox's or coreutils' sha256sum here).  Both print the hex digest first.
HASH_FILE = {"openssl": 'openssl dgst -sha256 -r "$1"', "sha256sum": 'sha256sum "$1"'}
# Access modes under which a pod may write the claim: a CSI driver publishes a ReadOnlyMany
# volume read-only (or offers no such mode at all).
WRITABLE_MODES = frozenset({"ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"})
# A file name in the volume: no directories, no hidden or special names.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
NO_SPACE = "No space left on device"
MIB = 1 << 20
def required_bytes(image_size: int, headroom: float = 0.1) -> int:
    """PVC size for an image, in whole MiB: room for two copies (a replacement is written beside
    the image it replaces, then renamed over it), ``headroom`` on top and 64 MiB for the filesystem."""
    return math.ceil((image_size * (2 + headroom) + 64 * MIB) / MIB) * MIB


def writable(access_modes) -> bool:
    return bool(WRITABLE_MODES & set(access_modes or ()))


def _hex_sha256(path: Path) -> str:
    """The image's sha256 as the PVC annotation and ``sha256sum`` write it: bare hex."""
    return file_sha256(path).removeprefix("sha256:")


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
        if not FILE_NAME.fullmatch(self.file_name or "") or ".." in self.file_name:
            raise LocoError(f"file_name {self.file_name!r} is not a plain file name (letters, digits and ._+-, "
                            "not starting with a dot, at most 128 characters)")
        if not writable(self.access_modes):
            raise LocoError(f"access modes {', '.join(self.access_modes)} leave the claim read-only, so the "
                            "upload cannot write it: use ReadWriteOnce (one node) or ReadWriteMany (several); "
                            "the emulators still mount it read-only")
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
        sha = req.expected_sha256 or (_hex_sha256(req.image) if previous or check_mode else None)
        if claim is not None:
            self._check_writable(claim)
            self._check_capacity(claim, size)
            if previous == sha and annotations.get(FILE_ANNOTATION) == req.file_name:
                return UploadResult("current", sha, size, req.pvc, pvc_created=False, previous_sha256=previous)
        if check_mode:
            return UploadResult("would-upload", sha, size, req.pvc, pvc_created=claim is None,
                                previous_sha256=previous)
        if claim is None:
            self._create_claim(size)
        with self._uploader():
            resumed, sent, local_sha = self._send(size, hash_locally=sha is None)
            sha = sha or local_sha
            self._verify_and_install(sha, size)
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

    def _check_writable(self, claim) -> None:
        modes = claim.spec.access_modes or []
        if not writable(modes):
            raise LocoError(f"PVC {self.req.namespace}/{self.req.pvc} is {', '.join(modes)} only: a cluster mounts it "
                            "read-only, so the upload cannot write it; upload into a ReadWriteOnce or "
                            "ReadWriteMany claim (the emulators mount it read-only)")

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
    @contextlib.contextmanager
    def _uploader(self) -> Iterator[None]:
        """The uploader pod for the block, deleted after it.  When the block failed, a failure to
        delete is logged and noted on the block's error, never raised in its place: the user must
        see why the upload failed (a full volume, a stalled API server), not that cleanup did too."""
        try:
            self._start_uploader()
            yield
        except BaseException as exc:
            try:
                self._delete_uploader()
            except Exception as cleanup:  # whatever it was, the first error is the news
                what = f"deleting the uploader pod {self.req.namespace}/{self.pod}"
                reason = kube.api_error(cleanup, what) if isinstance(cleanup, kube.API_FAILURES) else cleanup
                log.warning("after the failed upload, %s", reason)
                exc.add_note(f"also: {reason}")
            raise
        self._delete_uploader()

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

    def _sh(self, script: str, *args: str, stdin=None, retries: int = 15) -> str:
        """Run a shell script in the uploader, ``args`` as its ``$1``...; exec can be refused for a
        moment after the pod turns ready, so it is retried: soon at first (a ready pod usually takes
        exec within a second), every 2 s later, about 20 s in all."""
        for attempt in range(retries):
            try:
                result = kube.exec_command(self.api, self.req.namespace, self.pod, ["sh", "-c", script, "sh", *args],
                                           stdin=stdin, timeout=max(self.req.timeout, 3600))
                break
            except LocoError:  # names the command, the pod and what to do
                if stdin is not None or attempt == retries - 1:
                    raise
                time.sleep(min(0.1 * 2**attempt, 2.0))
        if result.returncode:
            raise UploaderError(script, self.pod, result.returncode, result.stderr.decode(errors="replace").strip())
        return result.stdout.decode()

    # -- transfer ------------------------------------------------------
    def part_path(self) -> str:
        """The part file: named after the image's size and mtime, so only the same image resumes it."""
        stat = self.req.image.stat()
        return f"{MOUNT}/.{self.req.file_name}.{stat.st_size:x}-{stat.st_mtime_ns:x}.part"

    def _send(self, size: int, hash_locally: bool) -> tuple[int, int, str | None]:
        """Append the image to the part file from wherever it stops, and fsync it.

        Returns (resumed_from, bytes sent, local sha256: None unless ``hash_locally``).
        """
        part, name = self.part_path(), self.req.file_name
        # Parts of other images cannot be resumed: remove them.  And which sha256 tool is there?
        self.hasher = self._sh(
            'for f in "$1"/."$2".*.part; do [ "$f" = "$3" ] || rm -f "$f"; done; '
            "if command -v openssl >/dev/null; then echo openssl; else echo sha256sum; fi",
            MOUNT, name, part).strip()
        resumed = sent = 0
        for attempt in range(self.req.retries + 1):
            offset = self._part_size(part)
            if offset > size:
                self._sh('rm -f "$1"', part)
                offset = 0
            if attempt == 0:
                resumed = offset
                self._check_room(size - offset)
            elif self._short_of(size - offset) is not None:
                # What cut the last attempt was the volume filling up: the exec's connection often
                # drops when ``cat`` fails, before its "No space left" reaches us.
                self._out_of_space(part, size)
            if self.progress:
                self.progress.reset(offset)
            digest = hashlib.sha256() if hash_locally else None
            if offset == size:
                return resumed, sent, _hex_sha256(self.req.image) if hash_locally else None
            try:
                # cat's status is the write's: a full volume fails here, not later.
                self._sh('cat >> "$1" && sync "$1"', part, stdin=self._chunks(offset, digest))
                sent += size - offset
                return resumed, sent, digest.hexdigest() if digest else None
            except UploaderError as exc:
                if NO_SPACE in exc.stderr:
                    self._out_of_space(part, size)
                if attempt == self.req.retries:
                    raise
                log.warning("upload interrupted at attempt %d (%s); resuming", attempt + 1, exc)
            except LocoError as exc:
                if attempt == self.req.retries:
                    raise
                log.warning("upload interrupted at attempt %d (%s); resuming", attempt + 1, exc)
            time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def _part_size(self, part: str) -> int:
        return int(self._sh('if [ -f "$1" ]; then wc -c < "$1"; else echo 0; fi', part).strip() or 0)

    def _free_bytes(self) -> int | None:
        """Bytes the volume has free, as its filesystem says (None if ``df`` says nothing usable)."""
        lines = self._sh('df -Pk "$1"', MOUNT).strip().splitlines()
        fields = lines[-1].split() if len(lines) > 1 else []
        return int(fields[3]) * 1024 if len(fields) >= 4 and fields[3].isdigit() else None

    def _short_of(self, needed: int) -> int | None:
        """The volume's free bytes if fewer than ``needed`` (None: enough, or ``df`` cannot tell)."""
        free = self._free_bytes()
        return free if free is not None and free < needed else None

    def _check_room(self, needed: int) -> None:
        """Refuse up front what cannot fit: the previous image stays until the new one is complete."""
        free = self._short_of(needed)
        if free is not None:
            raise LocoError(
                f"PVC {self.req.namespace}/{self.req.pvc} has {_mib(free)} free but the upload needs {_mib(needed)} "
                f"more (the new {self.req.file_name} is written beside the one it replaces); the previous image is "
                f"untouched. Grow the claim by at least {_mib(needed - free)} or upload into a new PVC")

    def _out_of_space(self, part: str, size: int) -> None:
        """The volume filled up mid-write: say so, and free what the part file took."""
        written = self._part_size(part)
        self._sh('rm -f "$1"', part)
        raise LocoError(
            f"PVC {self.req.namespace}/{self.req.pvc} ran out of space after {_mib(written)} of the "
            f"{_mib(size)} image; the part file was removed and {self.req.file_name} left as it was. "
            f"Grow the claim (it needs {_mib(size)} free beside the current image) or upload into a new PVC")

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

    def _verify_and_install(self, sha: str, size: int) -> None:
        """Hash the part file as it lies on the volume; install it only if it is the image."""
        part, name = self.part_path(), self.req.file_name
        final = f"{MOUNT}/{name}"
        found_size = self._part_size(part)
        found = self._sh(HASH_FILE[self.hasher], part).split()[0] if found_size == size else None
        if found != sha:
            self._sh('rm -f "$1"', part)
            what = f"sha256 {found}" if found else f"{found_size} of {size} bytes"
            raise LocoError(f"the uploaded image in the cluster has {what}, expected sha256 {sha}; "
                            f"the part file was removed and {name} left as it was")
        # The checksum file first, beside: a failure there changes nothing.
        self._sh('printf "%s  %s\\n" "$3" "$4" > "$2.sha256.part" && mv -f "$1" "$2" && '
                 'mv -f "$2.sha256.part" "$2.sha256"', part, final, sha, name)


class UploaderError(LocoError):
    """A script in the uploader pod exited non-zero."""

    def __init__(self, script: str, pod: str, status: int, stderr: str):
        super().__init__(f"`{script}` in {pod} exited {status}: {stderr}")
        self.stderr = stderr


def _mib(count: int) -> str:
    return f"{count / MIB:.1f} MiB"
