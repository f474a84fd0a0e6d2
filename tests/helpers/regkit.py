"""Helpers for the registry tests and the reliability suite: clients, small real qcow2 images,
hand-made images and ISOs."""

import base64
import datetime
import hashlib
import http.server
import io
import ipaddress
import json
import os
import struct
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from loco_lan.oci import Client, Credentials, Reference
from loco_lan.oci import manifest as mt
from loco_lan.oci.manifest import descriptor, encode, sha256_digest

USER = "loco"
PASSWORD = "correct horse battery"


def fast_client(credentials: Credentials | None = None) -> Client:
    return Client(credentials, plain_http=True, timeout=10, retries=3, backoff=0.05)


def make_qcow2(path: Path, mib: int = 2, pattern: int | None = 0x5A) -> Path:
    """A 16 MiB qcow2 (or ``mib`` MiB, if more) with ``mib`` MiB at offset 0 of ``pattern``, or of
    random bytes if None (incompressible, so compressed layers stay as big as the disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if pattern is None:
        raw = path.with_suffix(".raw")
        raw.write_bytes(os.urandom(mib << 20))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
        subprocess.run(["qemu-img", "resize", "-q", str(path), f"{max(mib, 16)}M"], check=True)
        raw.unlink()
        return path
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{max(mib, 16)}M"], check=True)
    if mib:
        subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} 0 {mib}M", str(path)],
            check=True, capture_output=True,
        )
    return path


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A plain tar archive holding ``members`` (name -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_tar_image(client: Client, ref: Reference, members: dict[str, bytes]) -> str:
    """Push a form (a) image whose single plain tar layer holds ``members`` (name -> content)."""
    layer = tar_bytes(members)
    config = encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    for blob in (layer, config):
        client.upload_blob(ref, io.BytesIO(blob), sha256_digest(blob), len(blob))
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_IMAGE_CONFIG, sha256_digest(config), len(config)),
        "layers": [descriptor(mt.OCI_LAYER_TAR, sha256_digest(layer), len(layer))],
    }
    return client.put_manifest(ref, encode(manifest), mt.OCI_MANIFEST)


def files_in(directory: Path) -> list[str]:
    """Everything in ``directory`` (temp leftovers included), sorted."""
    return sorted(p.name for p in directory.iterdir())


def poweroff_iso(path: Path) -> Path:
    """A 42 KiB El Torito ISO whose no-emulation boot sector powers the PC off through APM
    (SeaBIOS maps it to ACPI S5): QEMU exits as if an installer had finished and shut down."""
    sector = 2048
    code = bytes.fromhex(
        "b80153" "31db" "cd15"  # mov ax,5301h; xor bx,bx; int 15h   - APM real-mode connect
        "b80e53" "31db" "b90201" "cd15"  # mov ax,530Eh; cx=0102h   - driver version 1.2
        "b80753" "bb0100" "b90300" "cd15"  # mov ax,5307h; bx=1; cx=3 - all devices off
        "fa" "f4" "ebfd"  # cli; hlt; jmp back to hlt
    )

    def volume_descriptor(kind: int, body: bytes) -> bytes:
        return (bytes([kind]) + b"CD001\x01" + body).ljust(sector, b"\0")

    boot_record = volume_descriptor(0, b"EL TORITO SPECIFICATION".ljust(64, b"\0") + struct.pack("<I", 19))
    validation = bytearray(b"\x01" + b"\0" * 29 + b"\x55\xaa")
    validation[28:30] = struct.pack("<H", -sum(struct.unpack("<16H", bytes(validation))) & 0xFFFF)
    initial = b"\x88\x00" + struct.pack("<HxxHI", 0, 4, 20)  # bootable, no emulation, 4 sectors at LBA 20
    catalog = (bytes(validation) + initial.ljust(32, b"\0")).ljust(sector, b"\0")
    path.write_bytes(
        b"\0" * sector * 16
        + volume_descriptor(1, b"")
        + boot_record
        + volume_descriptor(255, b"")
        + catalog
        + code.ljust(sector, b"\0")
    )
    return path


class TokenService:
    """A bearer-token service in the style of ghcr.io's: anonymous callers get ``pull``,
    USER/PASSWORD get ``pull,push``, anyone else is refused.  Tokens are ES256 JWTs carrying
    their self-signed certificate (``x5c``), which the registry is configured to trust."""

    service = "loco-test"
    issuer = "loco-test-tokens"

    def __init__(self, directory: Path):
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loco test tokens")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.cert_path = directory / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.granted: list[tuple[str, str]] = []  # (subject, scope) of each token handed out
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                service._answer(self)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def registry_auth(self) -> dict:
        realm = f"http://127.0.0.1:{self._server.server_port}/token"
        return {"token": {"realm": realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert_path)}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        subject, allowed = "", {"pull"}
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            if base64.b64decode(credential).decode() != f"{USER}:{PASSWORD}":
                request.send_error(401)
                return
            subject, allowed = USER, {"pull", "push"}
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": sorted(set(actions.split(",")) & allowed)})
            self.granted.append((subject, scope))
        now = int(time.time())
        token = self._jwt({"iss": self.issuer, "sub": subject, "aud": query["service"][0], "exp": now + 300,
                           "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _jwt(self, claims: dict) -> str:
        def b64url(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""

    def certificate(subject: str, key, issuer: x509.Name, signer, *, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loco test CA")])
    ca = certificate("loco test CA", ca_key, ca_name, ca_key, ca=True)
    server = certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths
