"""Pure logic of the local cluster: certificates, sandbox arguments, shims."""

import os
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from loco_lan.cluster import pki, sandbox


def test_client_and_server_certificates_carry_identity_and_names(tmp_path):
    ca = pki.CertificateAuthority(tmp_path)
    client = ca.issue("admin", "loco-admin", "system:masters")
    server = ca.issue("apiserver", "kube-apiserver", server_names=("127.0.0.1", "kubernetes"))
    cert = x509.load_pem_x509_certificate(client.cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "loco-admin"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    sans = x509.load_pem_x509_certificate(server.cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["kubernetes"]
    assert oct(client.key.stat().st_mode & 0o777) == "0o600"


def test_certificates_are_issued_once(tmp_path):
    ca = pki.CertificateAuthority(tmp_path)
    first = ca.issue("admin", "loco-admin").cert.read_bytes()
    assert pki.CertificateAuthority(tmp_path).issue("admin", "loco-admin").cert.read_bytes() == first


def test_bwrap_args_mount_volumes_over_a_read_only_host(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib64").mkdir()
    args = sandbox.bwrap_args(
        [sandbox.Mount("/pv/a", "/images", read_only=True), sandbox.Mount("/pods/x/scratch", "/scratch")],
        hostname="web-0", root=root)
    pairs = list(zip(args, args[1:], args[2:], strict=False))
    assert ("--ro-bind", "/usr", "/usr") in pairs
    assert ("--symlink", "usr/bin", "/bin") in pairs
    assert ("--ro-bind", "/lib64", "/lib64") in pairs
    assert ("--ro-bind", "/pv/a", "/images") in pairs
    assert ("--bind", "/pods/x/scratch", "/scratch") in pairs
    assert args[args.index("--hostname") + 1] == "web-0"
    assert args[-2:] == ["--chdir", "/"]


def test_args_file_is_nul_separated(tmp_path):
    path = tmp_path / "main.args"
    sandbox.write_args(path, ["--bind", "/a b", "/c"])
    assert path.read_bytes() == b"--bind\0/a b\0/c\0"


def test_shims_cover_every_command_on_path(tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("tar", "sha256sum"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    (tools / "notes.txt").write_text("not a command")
    monkeypatch.setenv("PATH", str(tools))
    shims = sandbox.install_shims(tmp_path / "shims")
    assert os.readlink(shims / "tar") == sandbox.SHIM_NAME
    assert os.readlink(shims / "sha256sum") == sandbox.SHIM_NAME
    assert not (shims / "notes.txt").exists()
    assert Path(shims / sandbox.SHIM_NAME).read_text() == sandbox.SHIM
    sandbox.install_shims(tmp_path / "shims")  # a second run changes nothing and does not fail
