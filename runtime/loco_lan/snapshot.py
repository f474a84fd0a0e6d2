"""Snapshots on disk: pull one from a registry to a path, push one, and inspect qcow2 files.

A pull writes a record beside the image (``<image>.snapshot.json``) naming the
manifest digest it came from, so pulling the same thing again is a no-op.  The
image is written to a temp file in the destination directory, verified (digest
while streaming, then ``qemu-img check``) and only then renamed into place: a
failed pull leaves nothing behind and an existing image untouched.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.oci import Client, NotFound, Reference, extract, push_artifact, resolve
from loco_lan.oci.client import CHUNK
from loco_lan.oci.disk import now_rfc3339
from loco_lan.progress import Progress, human_bytes

RECORD_SUFFIX = ".snapshot.json"


@dataclass(frozen=True)
class Result:
    action: str
    """``pulled``, ``current`` (nothing to do) or ``pushed``; in check mode, what would happen."""
    path: str
    reference: str
    digest: str | None = None
    sha256: str | None = None
    size: int | None = None
    virtual_size: int | None = None

    @property
    def changed(self) -> bool:
        return self.action != "current"

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        sizes = "".join(
            f", {label} {human_bytes(value)}"
            for label, value in (("size", self.size), ("virtual", self.virtual_size))
            if value is not None
        )
        what = {
            "pulled": f"{self.reference} -> {self.path}",
            "pushed": f"{self.path} -> {self.reference}",
            "current": f"{self.path} matches {self.reference}",
        }[self.action]
        return f"{self.action}: {what} ({self.digest or 'digest not known yet'}{sizes})"


# -- qcow2 inspection --------------------------------------------------------


def qemu_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocoError(f"{name} not found on PATH; install QEMU (Debian: qemu-utils / qemu-system-x86)")
    return path


def virtual_size(path: Path) -> int:
    """The qcow2's virtual disk size; a clear error when ``path`` is not a qcow2."""
    done = subprocess.run(
        [qemu_tool("qemu-img"), "info", "-f", "qcow2", "--output=json", str(path)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise LocoError(f"{path} is not a usable qcow2 image: {reason}")
    return int(json.loads(done.stdout)["virtual-size"])


def check_qcow2(path: Path) -> None:
    """``qemu-img check``: refuse corrupt images (leaked clusters, exit 3, are harmless)."""
    command = [qemu_tool("qemu-img"), "check", "-q", "-f", "qcow2", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 3):
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise LocoError(f"qemu-img check failed for {path}: {reason}")


def file_sha256(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb") as handle, _progress(f"hashing {path.name}", path.stat().st_size, progress) as shown:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            if shown:
                shown.update(count)
    return "sha256:" + digest.hexdigest()


# -- files -------------------------------------------------------------------


@contextlib.contextmanager
def staged(dest: Path) -> Iterator[Path]:
    """A temp path beside ``dest``: renamed over it (after fsync) if the block succeeds, deleted if not.

    Like :func:`loco_lan.fsutil.atomic_writer`, but yields a path, for tools (qemu-img,
    QEMU) that write files themselves and for checks that must see the finished file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def record_path(image: Path) -> Path:
    return image.with_name(image.name + RECORD_SUFFIX)


def read_record(image: str | os.PathLike) -> dict:
    try:
        record = json.loads(record_path(Path(image)).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_current(image: Path, record: dict, digest: str, member: str | None) -> bool:
    """The image is what ``digest`` names, judging by the record and the file's size and mtime."""
    if record.get("digest") != digest or record.get("member") != member:
        return False
    try:
        stat = image.stat()
    except OSError:
        return False
    return stat.st_size == record.get("size") and stat.st_mtime_ns == record.get("mtime_ns")


def _free_bytes(directory: Path) -> int:
    while not directory.exists():  # the destination directory may not exist yet
        directory = directory.parent
    return shutil.disk_usage(directory).free


@contextlib.contextmanager
def _progress(label: str, total: int | None, enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(label, total) as shown:
        yield shown


@contextlib.contextmanager
def _disk_errors(dest: Path, doing: str) -> Iterator[None]:
    """Turn OS errors while writing into one clear line."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LocoError(f"no space left on the device holding {dest.parent} while {doing}") from None
        raise LocoError(f"cannot write {dest} while {doing}: {exc.strerror or exc}") from None


# -- pull / push -------------------------------------------------------------


def pull(
    reference: str | Reference,
    dest: str | os.PathLike,
    *,
    client: Client,
    member: str | None = None,
    force: bool = False,
    check_mode: bool = False,
    progress: bool = False,
) -> Result:
    """Make ``dest`` hold the snapshot ``reference`` names (a tag or ``@sha256:`` digest)."""
    ref = reference if isinstance(reference, Reference) else Reference.parse(reference)
    dest = Path(dest)
    record = read_record(dest)
    if not force and ref.digest and _is_current(dest, record, ref.digest, member):
        return _current(dest, ref, record)  # pinned and already here: no network needed
    disk = resolve(client, ref)
    if not force and _is_current(dest, record, disk.digest, member):
        return _current(dest, ref, record)
    if check_mode:
        return Result("pulled", str(dest), str(ref), disk.digest, size=disk.qcow2_size)
    free = _free_bytes(dest.parent)
    if disk.qcow2_size and disk.qcow2_size > free:
        needed = human_bytes(disk.qcow2_size)
        raise LocoError(f"no space for {ref} at {dest.parent}: needs {needed}, {human_bytes(free)} free")
    with _disk_errors(dest, f"pulling {ref}"), staged(dest) as tmp:
        with tmp.open("wb") as out, _progress(f"pulling {ref}", disk.download_size, progress) as shown:
            got = extract(client, disk, out, member=member, progress=shown)
        size_virtual = virtual_size(tmp)
        check_qcow2(tmp)
        with contextlib.suppress(FileNotFoundError):
            record_path(dest).unlink()  # the old record must not vouch for the new file
    stat = dest.stat()
    atomic_write(
        record_path(dest),
        json.dumps(
            {
                "reference": str(ref),
                "digest": disk.digest,
                "layer": got.layer,
                "member": member,
                "sha256": got.sha256,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "virtual_size": size_virtual,
                "pulled_at": now_rfc3339(),
            },
            indent=2,
        )
        + "\n",
    )
    return Result("pulled", str(dest), str(ref), disk.digest, got.sha256, stat.st_size, size_virtual)


def _current(dest: Path, ref: Reference, record: dict) -> Result:
    return Result(
        "current", str(dest), str(ref), record["digest"], record.get("sha256"), record["size"],
        record.get("virtual_size"),
    )


def push(
    path: str | os.PathLike,
    reference: str | Reference,
    *,
    client: Client,
    source: str | None = None,
    chunk_size: int = 0,
    check_mode: bool = False,
    progress: bool = False,
) -> Result:
    """Publish the qcow2 at ``path`` as an OCI artifact (form (b)); a no-op if the tag already holds it."""
    ref = reference if isinstance(reference, Reference) else Reference.parse(reference)
    path = Path(path)
    if not path.is_file():
        raise LocoError(f"{path} does not exist")
    size_virtual = virtual_size(path)
    check_qcow2(path)
    sha256 = file_sha256(path, progress)
    size = path.stat().st_size
    try:
        remote = resolve(client, ref)
    except NotFound:
        remote = None
    if remote and [layer["digest"] for layer in remote.manifest.layers] == [sha256]:
        return Result("current", str(path), str(ref), remote.digest, sha256, size, size_virtual)
    if check_mode:
        return Result("pushed", str(path), str(ref), None, sha256, size, size_virtual)
    with _progress(f"pushing {path.name}", size, progress) as shown:
        digest = push_artifact(
            client, path, ref, sha256, source=source, chunk_size=chunk_size, progress=shown
        )
    return Result("pushed", str(path), str(ref), digest, sha256, size, size_virtual)
