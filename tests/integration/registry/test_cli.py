"""The ``loco snapshot`` and ``loco registry`` commands as a user runs them."""

import json
import subprocess
import sys

import pytest
from regkit import PASSWORD, USER

pytestmark = pytest.mark.registry


def loco(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("loco: error: ")
    return lines[0]


def test_registry_up_push_pull_down(tmp_path, qcow2):
    state = tmp_path / "state"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    credentials = ["--username", USER, "--password-file", str(password_file)]
    up = loco("registry", "--state-dir", str(state), "up", *credentials)
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()
    assert url.startswith("http://127.0.0.1:")
    try:
        assert loco("registry", "--state-dir", str(state), "up").stdout.strip() == url  # already up: same one
        status = json.loads(loco("registry", "--state-dir", str(state), "status", "--json").stdout)
        assert status["running"] and status["url"] == url
        reference = f"{url.removeprefix('http://')}/demo/win98:base"
        auth = ["--insecure-http", "--username", USER, "--password-file", str(password_file)]
        disk = qcow2()

        pushed = loco("snapshot", "push", str(disk), reference, *auth)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.startswith(f"pushed: {disk} -> {reference} (sha256:")
        assert "pushing disk.qcow2 100%" in pushed.stderr  # not a terminal: plain progress lines

        dest = tmp_path / "images" / "win98.qcow2"
        pulled = loco("snapshot", "pull", reference, str(dest), *auth)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.startswith(f"pulled: {reference} -> {dest} (sha256:")
        assert dest.read_bytes() == disk.read_bytes()

        again = loco("snapshot", "pull", reference, str(dest), *auth, "--json")
        assert json.loads(again.stdout)["action"] == "current"

        missing = loco("snapshot", "pull", reference.replace(":base", ":nope"), str(dest), *auth)
        assert "tag nope not found" in one_error_line(missing)
        no_credentials = loco("snapshot", "pull", reference, str(tmp_path / "other.qcow2"), "--insecure-http")
        assert "requires credentials" in one_error_line(no_credentials)
    finally:
        assert loco("registry", "--state-dir", str(state), "down").returncode == 0
    assert loco("registry", "--state-dir", str(state), "status").stdout.strip() == "not running"


def test_insecure_http_is_for_loopback_only(tmp_path):
    done = loco("snapshot", "pull", "registry.example.com/loco/win98:base", str(tmp_path / "w.qcow2"),
                "--insecure-http")
    assert one_error_line(done) == (
        "loco: error: --insecure-http is for loopback registries only, not registry.example.com"
    )


def test_bad_reference(tmp_path):
    done = loco("snapshot", "pull", "ghcr.io/Mroie/x:win98", str(tmp_path / "w.qcow2"))
    assert "invalid repository name 'Mroie/x'" in one_error_line(done)
