"""Snapshots on disk: pull one from a registry to a path, push one, and inspect qcow2 files.

A pull writes a record beside the image (``<image>.snapshot.json``) naming the
manifest digest it came from, so pulling the same thing again is a no-op.  The
image is written to a file beside the destination, verified (digest while
streaming, then ``qemu-img check``) and only then renamed into place: an
existing image is never touched by a failed pull.

A qcow2 layer (form (b)) downloads into ``.<image>.<digest>.partial``, fsynced
and recorded (``.partial.json``) every 64 MiB: a pull that dies, or is killed,
is resumed by the next run from the last recorded byte (the prefix is hashed
again locally, so the whole blob is still verified).  A tar layer (form (a))
cannot be resumed mid-stream; what such a pull leaves, and partials of another
digest, are removed by the next pull into the same place.  One pull at a time
per destination directory (a lock on the directory).
"""

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write, file_sha256, fsync_dir
from loco_lan.oci import Client, IntegrityError, NotFound, Reference, Unreachable, extract, push_artifact, resolve
from loco_lan.oci.client import CHUNK
from loco_lan.oci.disk import now_rfc3339, qcow2_layer, resume_qcow2
from loco_lan.progress import Progress, human_bytes

log = logging.getLogger(__name__)
RECORD_SUFFIX = ".snapshot.json"
CHECKPOINT_BYTES = 64 << 20


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
    resumed_from: int = 0
    """Bytes an earlier, interrupted pull had already written and this one kept."""

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
        resumed = f", resumed from {human_bytes(self.resumed_from)}" if self.resumed_from else ""
        return f"{self.action}: {what} ({self.digest or 'digest not known yet'}{sizes}{resumed})"


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
    fsync_dir(dest.parent)


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
    layer = qcow2_layer(disk, member)
    with _pull_lock(dest):
        partial = partial_path(dest, layer["digest"]) if layer else None
        _sweep(dest, keep=partial)
        have = _checkpointed(partial, layer) if layer else 0
        free = _free_bytes(dest.parent)
        if disk.qcow2_size and disk.qcow2_size - have > free:
            needed = human_bytes(disk.qcow2_size - have)
            raise LocoError(f"no space for {ref} at {dest.parent}: needs {needed}, {human_bytes(free)} free")
        with _disk_errors(dest, f"pulling {ref}"):
            if layer:
                try:
                    got, size_virtual = _pull_resumable(client, disk, layer, partial, have, dest, ref, progress)
                except IntegrityError:
                    if not have:
                        raise
                    # The kept prefix was not what it seemed (changed on disk since): once more, from zero.
                    log.warning("%s: the resumed download failed verification; downloading it again", dest)
                    have = 0
                    got, size_virtual = _pull_resumable(client, disk, layer, partial, have, dest, ref, progress)
            else:
                with staged(dest) as tmp:
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
    return Result("pulled", str(dest), str(ref), disk.digest, got.sha256, stat.st_size, size_virtual, have)


def partial_path(dest: Path, digest: str) -> Path:
    """Where a resumable pull of the blob ``digest`` into ``dest`` keeps what it has so far."""
    return dest.with_name(f".{dest.name}.{digest.removeprefix('sha256:')[:16]}.partial")


def _checkpoint_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _checkpointed(partial: Path, layer: dict) -> int:
    """Bytes of ``partial`` known to be on disk (fsynced, then recorded), 0 when nothing usable."""
    try:
        record = json.loads(_checkpoint_path(partial).read_text())
        size = partial.stat().st_size
    except (OSError, ValueError):
        return 0
    done = record.get("bytes") if isinstance(record, dict) and record.get("layer") == layer["digest"] else None
    return done if isinstance(done, int) and 0 < done <= min(size, int(layer["size"])) else 0


@contextlib.contextmanager
def _pull_lock(dest: Path) -> Iterator[None]:
    """One pull at a time into ``dest``'s directory (a lock on the directory itself: no lock file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocoError(f"another pull into {dest.parent} is running") from None
        yield
    finally:
        os.close(fd)


def _sweep(dest: Path, keep: Path | None) -> None:
    """Remove what earlier pulls into ``dest`` left and this one cannot use (under the pull lock)."""
    kept = {keep, _checkpoint_path(keep)} if keep else set()
    for pattern in (f".{dest.name}.*.partial", f".{dest.name}.*.partial.json", f".{dest.name}.*.tmp"):
        for leftover in dest.parent.glob(pattern):
            if leftover not in kept:
                leftover.unlink(missing_ok=True)


def _pull_resumable(client: Client, disk, layer: dict, partial: Path, have: int, dest: Path, ref: Reference,
                    progress: bool) -> tuple:
    """Download the qcow2 layer into ``partial`` from byte ``have``, check it, rename it over ``dest``."""
    prefix = hashlib.sha256()
    partial.touch()
    with partial.open("r+b") as out:
        out.truncate(have)
        while out.tell() < have and (chunk := out.read(min(CHUNK, have - out.tell()))):
            prefix.update(chunk)
        out.seek(have)
        with _progress(f"pulling {ref}", disk.download_size, progress) as shown:
            if shown:
                shown.reset(have)
            checkpoints = _Checkpoints(out, partial, layer["digest"], have)
            try:
                got = resume_qcow2(client, disk, checkpoints, have, prefix, progress=shown)
            except Unreachable as exc:
                if not checkpoints.saved:
                    raise
                # The registry went away: what is safely on disk stays for the next run, so say so.
                raise Unreachable(f"{exc}; the {human_bytes(checkpoints.saved)} saved so far are kept in "
                                  f"{partial} and the next pull resumes from there") from None
            except IntegrityError:
                _discard_partial(partial)  # what it holds is not the blob: nothing to resume
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    _discard_partial(partial)  # give the space back; a later pull starts again
                raise
        out.flush()
        os.fsync(out.fileno())
    try:
        size_virtual = virtual_size(partial)
        check_qcow2(partial)
    except LocoError:
        _discard_partial(partial)
        raise
    with contextlib.suppress(FileNotFoundError):
        record_path(dest).unlink()  # the old record must not vouch for the new file
    partial.chmod(0o644)
    os.replace(partial, dest)
    _checkpoint_path(partial).unlink(missing_ok=True)
    return got, size_virtual


def _discard_partial(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _checkpoint_path(partial).unlink(missing_ok=True)


class _Checkpoints(io.RawIOBase):
    """Writes to ``out``; every CHECKPOINT_BYTES fsyncs it and records how much is safely there."""

    def __init__(self, out, partial: Path, digest: str, done: int):
        super().__init__()
        self.out, self.record, self.digest = out, _checkpoint_path(partial), digest
        self.done = self.saved = done

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        count = self.out.write(data)
        self.done += count
        if self.done - self.saved >= CHECKPOINT_BYTES:
            self.out.flush()
            os.fsync(self.out.fileno())
            atomic_write(self.record, json.dumps({"layer": self.digest, "bytes": self.done}))
            self.saved = self.done
        return count


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
