"""BlobReader's resume and verification logic against a scripted fake registry."""

import hashlib
import os
import re

import pytest
import urllib3
from urllib3.connection import HTTPConnection

from loco_lan.oci import BlobReader, IntegrityError, Reference, RegistryError, Unreachable
from loco_lan.oci.client import describe

BLOB = os.urandom(10_000)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
REF = Reference.parse("127.0.0.1:5000/snap:x")


class Response:
    def __init__(self, data: bytes, status: int, headers: dict, cut_after: int | None):
        self._data, self.status, self.headers, self._cut_after = data, status, headers, cut_after
        self._pos = 0

    def read1(self, count: int) -> bytes:
        if self._cut_after is not None and self._pos >= self._cut_after:
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
        end = min(
            self._pos + count, len(self._data), self._cut_after if self._cut_after is not None else 1 << 62
        )
        data, self._pos = self._data[self._pos : end], end
        return data

    read = read1

    def drain_conn(self):
        pass

    def release_conn(self):
        pass


class Registry:
    """Serves BLOB; connection i is cut after ``cuts[i]`` bytes of it; honours Range unless told not to."""

    retries = 3

    def __init__(self, blob: bytes = BLOB, cuts: tuple = (), honour_range: bool = True):
        self.blob, self.cuts, self.honour_range = blob, list(cuts), honour_range
        self.starts: list[int] = []

    def request(self, method, ref, path, headers=None, stream=False):
        assert (method, path) == ("GET", f"blobs/{DIGEST}")
        match = re.fullmatch(r"bytes=(\d+)-", (headers or {}).get("Range", ""))
        start = int(match[1]) if match else 0
        self.starts.append(start)
        cut = self.cuts.pop(0) if self.cuts else None
        if start and self.honour_range:
            content_range = f"bytes {start}-{len(self.blob) - 1}/{len(self.blob)}"
            return Response(self.blob[start:], 206, {"Content-Range": content_range}, cut)
        return Response(self.blob, 200, {}, cut)

    def pause(self, failures):
        pass

    def fail(self, resp, ref, what):
        return RegistryError(f"{what}: HTTP {resp.status}")


class Counter:
    def __init__(self):
        self.done = 0

    def update(self, count):
        self.done += count


def read_all(reader: BlobReader) -> bytes:
    chunks = []
    while chunk := reader.read(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_cuts_resume_from_the_offset_reached():
    registry, progress = Registry(cuts=(3000, 2000)), Counter()
    reader = BlobReader(registry, REF, {"digest": DIGEST, "size": len(BLOB)}, progress)
    assert read_all(reader) == BLOB
    assert registry.starts == [0, 3000, 5000]
    assert (reader.resumes, reader.refetched, progress.done) == (2, 0, len(BLOB))


def test_server_ignoring_range_costs_a_skip_not_a_failure():
    registry = Registry(cuts=(3000,), honour_range=False)
    reader = BlobReader(registry, REF, {"digest": DIGEST, "size": len(BLOB)})
    assert read_all(reader) == BLOB
    assert (registry.starts, reader.refetched) == ([0, 3000], 3000)


def test_no_progress_gives_up_after_the_retries():
    registry = Registry(cuts=(3000, 0, 0, 0, 0))
    reader = BlobReader(registry, REF, {"digest": DIGEST, "size": len(BLOB)})
    with pytest.raises(Unreachable, match="kept failing at byte 3000 of 10000"):
        read_all(reader)


def test_digest_mismatch():
    tampered = bytearray(BLOB)
    tampered[5000] ^= 1
    reader = BlobReader(Registry(bytes(tampered)), REF, {"digest": DIGEST, "size": len(BLOB)})
    with pytest.raises(IntegrityError, match=f"blob {DIGEST} failed verification"):
        read_all(reader)


def test_more_bytes_than_declared():
    reader = BlobReader(Registry(BLOB + b"extra"), REF, {"digest": DIGEST, "size": len(BLOB)})
    with pytest.raises(IntegrityError, match="larger than its declared 10000 bytes"):
        read_all(reader)


def test_only_sha256_digests():
    with pytest.raises(RegistryError, match="only sha256"):
        BlobReader(Registry(), REF, {"digest": "sha512:" + "0" * 128, "size": 1})


def test_a_refused_connection_is_described_without_the_connection_object():
    refused = urllib3.exceptions.NewConnectionError(
        HTTPConnection("127.0.0.1", 5000), "Failed to establish a new connection: [Errno 111] Connection refused")
    assert describe(refused) == "Failed to establish a new connection: [Errno 111] Connection refused"
