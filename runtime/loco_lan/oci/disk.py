"""Snapshots in a registry, in either of the two forms a pull accepts:

(a) a container image whose tar layer (plain, gzip or zstd) holds a ``*.qcow2``;
(b) an OCI artifact whose layer blob is the qcow2 itself (``application/vnd.loco.disk.qcow2``).

Layers stream through verification, decompression and tar parsing straight into
the caller's file; nothing is buffered whole and no intermediate tar touches disk.
"""

import gzip
import hashlib
import io
import queue
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import zstandard

from loco_lan.oci import manifest as mt
from loco_lan.oci.client import CHUNK, BlobReader, Client
from loco_lan.oci.errors import BadImage
from loco_lan.oci.manifest import Manifest, descriptor, encode, sha256_digest
from loco_lan.oci.reference import Reference

QCOW2_MAGIC = b"QFI\xfb"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_EMPTY_CONFIG = b"{}"


@dataclass(frozen=True)
class RemoteDisk:
    """A snapshot resolved in the registry: what a reference points at right now."""

    reference: Reference
    digest: str
    """Digest the reference resolves to (the index's when it is an index): what a pinned pull would use."""
    manifest: Manifest
    """The image manifest whose layers hold the disk."""

    @property
    def download_size(self) -> int:
        return sum(int(layer["size"]) for layer in self.manifest.layers)

    @property
    def qcow2_size(self) -> int | None:
        """The disk's size when it is known before download (form (b))."""
        layer = qcow2_layer(self)
        return int(layer["size"]) if layer else None


@dataclass(frozen=True)
class Extracted:
    sha256: str
    size: int
    layer: str
    name: str
    """Path inside the tar layer, or the layer's title (its digest if untitled) for form (b)."""


def resolve(client: Client, ref: Reference) -> RemoteDisk:
    top = client.get_manifest(ref)
    image = client.get_manifest(ref, top.select()["digest"]) if top.is_index else top
    if not image.layers:
        raise BadImage(f"{ref} has no layers")
    return RemoteDisk(ref, top.digest, image)


def extract(
    client: Client, disk: RemoteDisk, out: BinaryIO, *, member: str | None = None, progress=None
) -> Extracted:
    """Write the snapshot's qcow2 to ``out``.

    ``member`` names the qcow2 inside a tar layer (or the title of a qcow2 layer); without it
    the image must hold exactly one ``*.qcow2``.  Every layer read is verified against its digest.
    """
    wanted = _normal(member) if member else None
    found: list[Extracted] = []
    for layer in disk.manifest.layers:
        if wanted and found:
            break
        with client.open_blob(disk.reference, layer, progress) as blob:
            _scan_layer(blob, layer, wanted, out, found)
    if not found:
        what = f"no {member}" if member else "no .qcow2 file"
        raise BadImage(f"{disk.reference} holds {what}")
    return found[0]


def qcow2_layer(disk: RemoteDisk, member: str | None = None) -> dict | None:
    """The one layer that is the qcow2 itself (form (b)), titled ``member`` when given: what a
    pull can resume byte by byte."""
    typed = [layer for layer in disk.manifest.layers if layer.get("mediaType") == mt.QCOW2]
    if len(typed) != 1:
        return None
    title = (typed[0].get("annotations") or {}).get(mt.TITLE) or typed[0]["digest"]
    return typed[0] if member is None or _normal(member) == _normal(title) else None


def resume_qcow2(client: Client, disk: RemoteDisk, out: BinaryIO, have: int, prefix, progress=None) -> Extracted:
    """Form (b): write the qcow2 layer to ``out`` from byte ``have`` on (``out`` positioned there,
    ``prefix`` the sha256 of the bytes before it); the whole layer is verified against its digest."""
    layer = qcow2_layer(disk)
    if layer is None:
        raise BadImage(f"{disk.reference} is not a single qcow2 layer; it cannot be resumed")
    with client.open_blob(disk.reference, layer, progress, offset=have, prefix=prefix) as blob:
        _copy(blob, out, None)
        blob.drain()
    title = (layer.get("annotations") or {}).get(mt.TITLE) or blob.digest
    return Extracted(blob.digest, blob.size, blob.digest, title)


def _scan_layer(blob: BlobReader, layer: dict, wanted: str | None, out: BinaryIO, found: list) -> None:
    stream = io.BufferedReader(blob, CHUNK)
    head = stream.peek(512)[:512]
    title = (layer.get("annotations") or {}).get(mt.TITLE) or blob.digest
    if layer.get("mediaType") == mt.QCOW2 or head.startswith(QCOW2_MAGIC):
        if wanted is None or _normal(title) == wanted:
            _claim(found, title)
            size = _copy(stream, out, None)
            found.append(Extracted(blob.digest, size, blob.digest, title))
        _drain(stream)
        return
    try:
        with tarfile.open(fileobj=_decompressed(stream, head), mode="r|", bufsize=CHUNK) as tar:
            for info in tar:
                name = _normal(info.name)
                chosen = name == wanted if wanted else name.lower().endswith(".qcow2")
                if not (chosen and info.isreg()):
                    continue
                _claim(found, name)
                digest = hashlib.sha256()
                size = _copy(tar.extractfile(info), out, digest)
                found.append(Extracted("sha256:" + digest.hexdigest(), size, blob.digest, name))
                if wanted:
                    break
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, zstandard.ZstdError) as exc:
        _drain(stream)  # a corrupted blob shows up as bad data first: let its digest speak
        raise BadImage(f"layer {blob.digest} is neither a qcow2 nor a readable tar archive ({exc})") from None
    _drain(stream)


def _claim(found: list, name: str) -> None:
    if found:
        raise BadImage(
            f"the image holds several .qcow2 files ({found[0].name}, {name}); choose one by its path"
        )


def _decompressed(stream: BinaryIO, head: bytes) -> BinaryIO:
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(_ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)
    return stream


def _copy(source: BinaryIO, out: BinaryIO, digest) -> int:
    """Copy ``source`` to ``out``, hashing into ``digest`` if given.

    Hashing and writing run in a second thread, overlapping the download, decompression
    and blob verification of this one (hashlib and file writes release the GIL); the
    queue is bounded, so memory stays at a few chunks whatever the size.
    """
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    failed: list[BaseException] = []

    def write_out() -> None:
        while (chunk := chunks.get()) is not None:
            if failed:
                continue  # keep taking chunks so the reader never blocks on a full queue
            try:
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
            except BaseException as exc:  # handed to the reading thread, which raises it
                failed.append(exc)

    writer = threading.Thread(target=write_out, name="disk-writer", daemon=True)
    writer.start()
    total = 0
    try:
        while not failed and (chunk := source.read(CHUNK)):
            chunks.put(chunk)
            total += len(chunk)
    finally:
        chunks.put(None)
        writer.join()
    if failed:
        raise failed[0]
    return total


def _drain(stream: BinaryIO) -> None:
    while stream.read(CHUNK):
        pass


def _normal(name: str) -> str:
    return str(PurePosixPath("/", name)).lstrip("/")


# -- push ------------------------------------------------------------------


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def push_artifact(
    client: Client,
    path: Path,
    ref: Reference,
    digest: str,
    *,
    source: str | None = None,
    chunk_size: int = 0,
    progress=None,
) -> str:
    """Push ``path`` (whose sha256 is ``digest``) as form (b); returns the manifest digest."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        client.upload_blob(ref, handle, digest, size, chunk_size=chunk_size, progress=progress)
    config = descriptor(mt.OCI_EMPTY, sha256_digest(_EMPTY_CONFIG), len(_EMPTY_CONFIG))
    client.upload_blob(ref, io.BytesIO(_EMPTY_CONFIG), config["digest"], config["size"])
    annotations = {mt.CREATED: now_rfc3339(), mt.DISK_SHA256: digest}
    if source:
        annotations[mt.SOURCE] = source
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": mt.QCOW2,
        "config": config,
        "layers": [descriptor(mt.QCOW2, digest, size, {mt.TITLE: path.name})],
        "annotations": annotations,
    }
    return client.put_manifest(ref, encode(manifest), mt.OCI_MANIFEST)


def push_image(
    client: Client,
    path: Path,
    ref: Reference,
    *,
    member: str | None = None,
    compression: str = "gzip",
    docker: bool = False,
    progress=None,
) -> str:
    """Push ``path`` as form (a): one tar layer holding it at ``member`` (default ``disk/<name>``).

    ``compression`` is ``gzip``, ``zstd`` or ``none``; ``docker`` writes a Docker schema 2
    manifest instead of an OCI one.  Returns the manifest digest.
    """
    if docker and compression != "gzip":
        raise BadImage("Docker schema 2 images carry gzip layers only")
    layer_type = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": mt.OCI_LAYER_TAR}[compression]
    with tempfile.TemporaryFile() as layer:
        compressed = _HashingWriter(layer)
        if compression == "gzip":
            encoder = gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6)
        elif compression == "zstd":
            encoder = zstandard.ZstdCompressor(level=3).stream_writer(compressed, closefd=False)
        else:
            encoder = compressed
        plain = _HashingWriter(encoder)
        with (
            tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            path.open("rb") as disk,
        ):
            info = tarfile.TarInfo(member or f"disk/{path.name}")
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = int(path.stat().st_mtime)
            tar.addfile(info, disk)
        if encoder is not compressed:
            encoder.close()
        client.upload_blob(ref, layer, compressed.digest, compressed.size, progress=progress)
        layer_desc = descriptor(
            mt.DOCKER_LAYER_GZIP if docker else layer_type, compressed.digest, compressed.size
        )
    config = encode(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": now_rfc3339(),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [plain.digest]},
        }
    )
    config_desc = descriptor(
        mt.DOCKER_IMAGE_CONFIG if docker else mt.OCI_IMAGE_CONFIG, sha256_digest(config), len(config)
    )
    client.upload_blob(ref, io.BytesIO(config), config_desc["digest"], config_desc["size"])
    media_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    manifest = {"schemaVersion": 2, "mediaType": media_type, "config": config_desc, "layers": [layer_desc]}
    return client.put_manifest(ref, encode(manifest), media_type)


class _HashingWriter(io.RawIOBase):
    """Pass writes through to ``target`` while counting and hashing them."""

    def __init__(self, target):
        super().__init__()
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
