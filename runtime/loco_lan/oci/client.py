"""Distribution API v2 over HTTP(S): auth, retries, manifests, blob download and upload.

Every network call has a timeout; transient failures (connection errors, 429, 5xx)
are retried with exponential backoff a bounded number of times.  Blob downloads
resume with ``Range`` after a cut instead of starting over.
"""

import contextlib
import hashlib
import io
import itertools
import json
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import urllib3

from loco_lan.errors import LocoError
from loco_lan.oci.auth import Credentials, parse_challenge
from loco_lan.oci.errors import AuthFailed, BadImage, IntegrityError, NotFound, RegistryError, Unreachable
from loco_lan.oci.manifest import ACCEPT, Manifest, sha256_digest
from loco_lan.oci.reference import Reference, is_loopback_host

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

Body = bytes | Callable[[], Iterator[bytes]] | None
"""A request body: bytes, or a factory returning a fresh iterator so the request can be replayed."""


class Client:
    """Talks to any registry; credentials apply to whichever registry a reference names."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        plain_http: bool = False,
        plain_http_hosts: tuple[str, ...] = (),
        ca_bundle: str | Path | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
    ):
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise LocoError(f"CA bundle {ca_bundle} does not exist")
        self.credentials = credentials or Credentials()
        self.plain_http = plain_http
        self.plain_http_hosts = frozenset(plain_http_hosts)
        self.retries = retries
        self.backoff = backoff
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=2,
            retries=False,
            blocksize=CHUNK,
            ca_certs=str(ca_bundle) if ca_bundle else None,
        )
        self._auth: dict[tuple[str, str], str] = {}

    # -- transport ---------------------------------------------------------

    def base_url(self, ref: Reference) -> str:
        host = ref.api_host
        if not self.plain_http:
            return f"https://{host}"
        if is_loopback_host(host) or host in self.plain_http_hosts:
            return f"http://{host}"
        raise LocoError(f"plain HTTP is only allowed for loopback registries, not {host}")

    def pause(self, failures: int) -> None:
        """Exponential backoff with jitter before retry number ``failures``."""
        time.sleep(min(self.backoff * 2 ** (failures - 1), 15.0) * random.uniform(0.8, 1.2))

    def request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        push: bool = False,
        headers: dict | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send to ``/v2/<repository>/<path>`` (or to ``path`` if a full URL), authenticating on 401."""
        url = path if "://" in path else f"{self.base_url(ref)}/v2/{ref.repository}/{path}"
        scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        host = ref.api_host
        for attempt in range(2):
            sent = dict(headers or {})
            authorization = self._auth.get((host, scope)) or self._auth.get((host, "*"))
            if authorization is None and self.credentials.token:
                authorization = f"Bearer {self.credentials.token}"
            if authorization:
                sent["Authorization"] = authorization
            resp = self._follow(method, url, sent, body, stream, retry)
            if resp.status != 401:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            _discard(resp)
            if attempt == 0 and challenge:
                self._authorize(ref, scope, challenge)
        if self.credentials:
            raise AuthFailed(f"registry {host} refused the credentials for {ref.repository}")
        raise AuthFailed(
            f"registry {host} requires credentials for {ref.repository} "
            "(--username with --password-file, or LOCO_REGISTRY_USERNAME/LOCO_REGISTRY_PASSWORD)"
        )

    def _authorize(self, ref: Reference, scope: str, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        host = ref.api_host
        if scheme == "basic":
            if not self.credentials.username:
                return  # request() reports the missing credentials
            self._auth[(host, "*")] = self.credentials.basic()
            return
        if scheme != "bearer" or not params.get("realm"):
            raise AuthFailed(
                f"registry {host} asks for unsupported authentication {challenge.split(' ')[0]!r}"
            )
        realm = params["realm"]
        realm_host = urllib.parse.urlsplit(realm).netloc
        if realm.startswith("http://") and not (
            is_loopback_host(realm_host) or realm_host in self.plain_http_hosts
        ):
            raise AuthFailed(f"registry {host} sends credentials to a plain-HTTP token service {realm_host}")
        query = urllib.parse.urlencode(
            {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        )
        headers = {"Authorization": self.credentials.basic()} if self.credentials.username else {}
        resp = self._send("GET", f"{realm}{'&' if '?' in realm else '?'}{query}", headers, None, False, True)
        if resp.status in (401, 403):
            return  # request() reports refused or missing credentials
        if resp.status != 200:
            raise RegistryError(f"token service {realm_host} answered HTTP {resp.status}")
        try:
            data = json.loads(resp.data)
            token = data.get("token") or data["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(f"token service {realm_host} returned no token") from None
        self._auth[(host, scope)] = f"Bearer {token}"

    def _follow(self, method, url, headers, body, stream, retry) -> urllib3.BaseHTTPResponse:
        """Send, following redirects (blob storage often lives elsewhere) without leaking Authorization."""
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(6):
            resp = self._send(method, url, headers, body, stream, retry)
            if resp.status not in REDIRECT_STATUS or method not in ("GET", "HEAD"):
                return resp
            location = resp.headers.get("Location")
            _discard(resp)
            if not location:
                raise RegistryError(f"registry {origin} redirected without a Location")
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"too many redirects from registry {origin}")

    def _send(self, method, url, headers, body, stream, retry) -> urllib3.BaseHTTPResponse:
        host = urllib.parse.urlsplit(url).netloc
        attempts = self.retries + 1 if retry else 1
        why = ""
        for attempt in range(attempts):
            if attempt:
                log.info("retrying %s %s (%s)", method, host, why)
                self.pause(attempt)
            try:
                resp = self._pool.urlopen(
                    method,
                    url,
                    headers=headers,
                    body=body() if callable(body) else body,
                    preload_content=not stream,
                    redirect=False,
                    retries=False,
                    timeout=self._timeout,
                )
            except urllib3.exceptions.SSLError as exc:
                raise RegistryError(
                    f"TLS failure talking to {host}: {describe(exc)} (a private CA needs a CA bundle)"
                ) from None
            except urllib3.exceptions.HTTPError as exc:
                why = describe(exc)
                continue
            if resp.status in TRANSIENT_STATUS and attempt + 1 < attempts:
                why = f"HTTP {resp.status}"
                _discard(resp)
                continue
            return resp
        raise Unreachable(f"cannot reach registry {host}: {why}")

    def fail(self, resp: urllib3.BaseHTTPResponse, ref: Reference, what: str) -> RegistryError:
        """The error for an unexpected response about ``what`` (e.g. ``"tag x"``)."""
        detail = _error_detail(resp)
        _discard(resp)
        where = f"{ref.registry}/{ref.repository}"
        if resp.status == 404:
            return NotFound(f"{what} not found in {where}{detail}")
        if resp.status == 403:
            return AuthFailed(f"registry {ref.api_host} denied access to {ref.repository}{detail}")
        return RegistryError(f"registry {ref.api_host} answered HTTP {resp.status} for {what}{detail}")

    # -- manifests ---------------------------------------------------------

    def get_manifest(self, ref: Reference, reference: str | None = None) -> Manifest:
        """Fetch and verify the manifest named by ``reference`` (default: the ref's digest or tag)."""
        reference = reference or ref.manifest_ref
        kind = "manifest" if _DIGEST.fullmatch(reference) else "tag"
        for failures in itertools.count(1):
            resp = self.request("GET", ref, f"manifests/{reference}", headers={"Accept": ACCEPT}, stream=True)
            if resp.status != 200:
                raise self.fail(resp, ref, f"{kind} {reference}")
            try:
                raw = resp.read(MAX_MANIFEST_BYTES + 1)
                break
            except urllib3.exceptions.HTTPError as exc:
                if failures > self.retries:
                    raise Unreachable(f"reading a manifest from {ref.api_host}: {describe(exc)}") from None
                self.pause(failures)
            finally:
                _discard(resp)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BadImage(f"manifest {reference} is larger than {MAX_MANIFEST_BYTES} bytes")
        digest = sha256_digest(raw)
        expected = reference if kind == "manifest" else resp.headers.get("Docker-Content-Digest", "")
        if _DIGEST.fullmatch(expected) and expected != digest:
            raise IntegrityError(
                f"manifest {reference} from {ref.api_host} does not match {expected} (got {digest})"
            )
        return Manifest.parse(raw, digest, resp.headers.get("Content-Type", "").split(";")[0].strip())

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT",
            ref,
            f"manifests/{ref.manifest_ref}",
            push=True,
            body=raw,
            headers={"Content-Type": media_type},
        )
        if resp.status not in (200, 201):
            raise self.fail(resp, ref, f"manifest upload for {ref.manifest_ref}")
        return sha256_digest(raw)

    # -- blobs -------------------------------------------------------------

    def open_blob(self, ref: Reference, desc: dict, progress=None, *, offset: int = 0, prefix=None) -> "BlobReader":
        return BlobReader(self, ref, desc, progress, offset=offset, prefix=prefix)

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        resp = self.request("HEAD", ref, f"blobs/{digest}", push=True)
        _discard(resp)
        if resp.status in (200, 404):
            return resp.status == 200
        raise self.fail(resp, ref, f"blob {digest}")

    def upload_blob(
        self, ref: Reference, source: BinaryIO, digest: str, size: int, *, chunk_size: int = 0, progress=None
    ) -> bool:
        """Upload ``size`` bytes of the seekable ``source`` unless the registry has ``digest``; True if sent.

        ``chunk_size`` 0 sends one PUT (what every registry supports); otherwise PATCH chunks,
        and after a failure ask the registry how much it kept and continue from there.
        """
        if self.blob_exists(ref, digest):
            log.info("blob %s already in %s", digest, ref.repository)
            return False
        location, offset, failures = self._start_upload(ref), 0, 0
        while True:
            try:
                if chunk_size:
                    while offset < size:
                        length = min(chunk_size, size - offset)
                        location = self._patch(ref, location, source, offset, length, progress)
                        offset += length
                    self._put_blob(ref, location, digest, None, 0)
                else:
                    self._put_blob(ref, location, digest, _window(source, 0, size, progress), size)
                return True
            except (Unreachable, _UploadSlip) as exc:
                failures += 1
                if failures > self.retries:
                    raise Unreachable(f"upload of {digest} to {ref.api_host} kept failing: {exc}") from None
                log.warning("upload of %s interrupted (%s); retrying", digest, exc)
                self.pause(failures)
                offset, location = self._upload_progress(ref, location) if chunk_size else (0, None)
                location = location or self._start_upload(ref)
                if progress is not None:
                    progress.reset(offset)

    def _start_upload(self, ref: Reference) -> str:
        resp = self.request("POST", ref, "blobs/uploads/", push=True, headers={"Content-Length": "0"})
        if resp.status != 202:
            raise self.fail(resp, ref, "blob upload")
        _discard(resp)
        return self._location(ref, resp)

    def _patch(self, ref, location, source, offset, length, progress) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Content-Range": f"{offset}-{offset + length - 1}",
        }
        body = _window(source, offset, length, progress)
        resp = self.request("PATCH", ref, location, push=True, headers=headers, body=body, retry=False)
        if resp.status in TRANSIENT_STATUS or resp.status == 416:
            _discard(resp)
            raise _UploadSlip(f"HTTP {resp.status}")
        if resp.status != 202:
            raise self.fail(resp, ref, "blob chunk")
        _discard(resp)
        return self._location(ref, resp)

    def _put_blob(self, ref, location, digest, body, size) -> None:
        url = f"{location}{'&' if '?' in location else '?'}digest={urllib.parse.quote(digest)}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = self.request("PUT", ref, url, push=True, headers=headers, body=body, retry=False)
        if resp.status in TRANSIENT_STATUS:
            _discard(resp)
            raise _UploadSlip(f"HTTP {resp.status}")
        if resp.status == 400 and b"DIGEST_INVALID" in (resp.data or b""):
            raise IntegrityError(f"registry {ref.api_host} rejected blob {digest}: content does not match")
        if resp.status != 201:
            raise self.fail(resp, ref, f"blob {digest}")
        _discard(resp)

    def _upload_progress(self, ref: Reference, location: str) -> tuple[int, str | None]:
        """Bytes the registry holds for an interrupted upload, and where to continue (None: start over)."""
        try:
            resp = self.request("GET", ref, location, push=True)
        except Unreachable:
            return 0, None
        _discard(resp)
        match = re.fullmatch(r"0-(\d+)", resp.headers.get("Range", ""))
        if resp.status != 204:
            return 0, None
        return (int(match[1]) + 1 if match else 0), self._location(ref, resp)

    def _location(self, ref: Reference, resp) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {ref.api_host} gave no upload location")
        return urllib.parse.urljoin(self.base_url(ref) + "/", location)


class BlobReader(io.RawIOBase):
    """A blob as a file: sha256 and size are verified as bytes arrive (``IntegrityError`` at EOF on a
    mismatch) and a cut connection is resumed with ``Range`` from the current offset.

    ``offset`` starts it past a prefix the caller already has, ``prefix`` being the sha256 object
    fed with those bytes (so the whole blob is still verified at the end)."""

    def __init__(self, client: Client, ref: Reference, desc: dict, progress=None, *, offset: int = 0,
                 prefix=None):
        super().__init__()
        self.digest = desc["digest"]
        if not _DIGEST.fullmatch(self.digest):
            raise BadImage(f"unsupported blob digest {self.digest!r} (only sha256)")
        self.size = int(desc["size"])
        if not 0 <= offset <= self.size or (offset and prefix is None):
            raise ValueError("a blob read from an offset needs the sha256 of the bytes before it")
        self.offset = offset
        self.resumes = 0
        self.refetched = 0
        self._client, self._ref, self._progress = client, ref, progress
        self._hash = prefix if prefix is not None else hashlib.sha256()
        self._resp = None
        self._failures = 0
        self._failed_at = -1
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._verified:
            return 0
        if self.offset == self.size:  # nothing left to fetch (all of it was given as the prefix)
            self._verify()
            return 0
        while True:
            try:
                if self._resp is None:
                    self._connect()
                data = self._resp.read1(len(buffer))  # unlike read(n), loses nothing received before a cut
                count = len(data)
                buffer[:count] = data
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._lost(describe(exc))
                continue
            if count == 0 and self.offset < self.size:
                self._lost("connection closed early")
                continue
            break
        if count == 0:
            self._verify()
            return 0
        if self.offset + count > self.size:
            raise IntegrityError(f"blob {self.digest} is larger than its declared {self.size} bytes")
        self._hash.update(memoryview(buffer)[:count])
        self.offset += count
        if self._progress is not None:
            self._progress.update(count)
        return count

    def drain(self) -> None:
        """Read (and so verify) whatever is left."""
        buffer = bytearray(CHUNK)
        while self.readinto(buffer):
            pass

    def close(self) -> None:
        if self._resp is not None:
            _discard(self._resp)
            self._resp = None
        super().close()

    def _connect(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        resp = self._client.request("GET", self._ref, f"blobs/{self.digest}", headers=headers, stream=True)
        if resp.status == 206:
            start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not start or int(start[1]) != self.offset:
                _discard(resp)
                raise RegistryError(
                    f"registry {self._ref.api_host} resumed blob {self.digest} at the wrong offset"
                )
        elif resp.status == 200:
            self._skip(resp, self.offset)  # server ignored Range: fall back to skipping what we have
        else:
            raise self._client.fail(resp, self._ref, f"blob {self.digest}")
        self._resp = resp

    def _skip(self, resp, count: int) -> None:
        while count:
            data = resp.read(min(CHUNK, count))
            if not data:
                raise urllib3.exceptions.ProtocolError("connection closed while skipping")
            count -= len(data)
            self.refetched += len(data)

    def _lost(self, why: str) -> None:
        if self._resp is not None:
            _discard(self._resp)
            self._resp = None
        self._failures = 1 if self.offset > self._failed_at else self._failures + 1
        self._failed_at = self.offset
        if self._failures > self._client.retries:
            raise Unreachable(
                f"download of blob {self.digest} from {self._ref.api_host} kept failing at byte "
                f"{self.offset} of {self.size}: {why}"
            )
        log.warning("blob %s: %s at byte %d of %d; resuming", self.digest[:19], why, self.offset, self.size)
        self.resumes += 1
        self._client.pause(self._failures)

    def _verify(self) -> None:
        if self.offset != self.size:
            raise IntegrityError(f"blob {self.digest} ended at {self.offset} of {self.size} bytes")
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise IntegrityError(f"blob {self.digest} failed verification (its content hashes to {got})")
        self._verified = True


class _UploadSlip(Exception):
    """A retryable upload failure the registry reported in its answer."""


def _window(source: BinaryIO, start: int, length: int, progress) -> Callable[[], Iterator[bytes]]:
    """A replayable body: ``length`` bytes of ``source`` from ``start``."""

    def chunks() -> Iterator[bytes]:
        source.seek(start)
        left = length
        while left:
            data = source.read(min(CHUNK, left))
            if not data:
                raise LocoError("the file being uploaded shrank during the upload")
            left -= len(data)
            if progress is not None:
                progress.update(len(data))
            yield data

    return chunks


def _discard(resp) -> None:
    """Finish with a response so its connection can be reused (or dropped if unread)."""
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
        resp.drain_conn()
    resp.release_conn()


def _error_detail(resp) -> str:
    try:
        data = resp.data if resp.data is not None else b""
        errors = json.loads(data).get("errors") or []
        first = errors[0]
        return f" ({first.get('code', '')}: {first.get('message', '')})"
    except (ValueError, AttributeError, IndexError, TypeError, urllib3.exceptions.HTTPError):
        return ""


def describe(exc: BaseException) -> str:
    """A short reason for a transport error, without object reprs."""
    reason = getattr(exc, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else exc)
    if isinstance(exc, urllib3.exceptions.ProtocolError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    return re.sub(r"<[^>]*>:\s*|HTTP(S)?Connection(Pool)?\([^)]*\):\s*", "", text).strip() or type(exc).__name__
