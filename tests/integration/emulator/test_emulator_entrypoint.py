"""The emulator entrypoint as the container runs it: ``python -m loco_lan.emulator``
with settings in the environment, starting real QEMU (TCG) on loopback."""

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loco_lan import qmp, rfb


def run_entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loco_lan.emulator"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "default disk /images/win98.qcow2 (LOCO_DISK and DISK unset): no such file"),
        ({"LOCO_DISK": ""}, "LOCO_DISK is empty: set it to the path of the Windows 98 qcow2 image"),
        ({"DISK": "{tmp}/missing.qcow2"}, "DISK={tmp}/missing.qcow2: no such file"),
        ({"LOCO_DISK": "{tmp}"}, "LOCO_DISK={tmp}: is a directory, not a qcow2 image"),
        ({"LOCO_DISK": "{tmp}/raw.img"}, "LOCO_DISK={tmp}/raw.img: not a qcow2 image"),
    ],
    ids=["unset", "empty", "missing", "directory", "not-qcow2"],
)
def test_bad_disk_fails_with_one_line(tmp_path, env, expected):
    (tmp_path / "raw.img").write_bytes(b"\xeb\x3c" + bytes(510))
    env = {key: value.format(tmp=tmp_path) for key, value in env.items()}
    if not env and Path("/images/win98.qcow2").exists():
        pytest.skip("this machine has a real /images/win98.qcow2")
    result = run_entrypoint(env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [f"loco: error: {expected.format(tmp=tmp_path)}"], result.stderr


def test_print_command_checks_the_disk_and_starts_nothing(boot_disks):
    result = subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", "emulator", "run", "--print-command"],
        env={"PATH": os.environ["PATH"], "DISK": str(boot_disks["desktop"]), "VNC_PASSWORD": "secret"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("qemu-system-i386 -name loco-instance-0 -machine pc,pcspk-audiodev=snd0 -accel ")
    assert "-cpu pentium2" in result.stdout and "-vnc 0.0.0.0:1,password=on,audiodev=snd0" in result.stdout
    assert "secret" not in result.stdout


@pytest.mark.qemu
def test_starts_qemu_with_vnc_qmp_and_health(emulator, boot_disks):
    emu = emulator(boot_disks["desktop"])
    body = emu.wait_healthy()
    assert body["qemu"] is True and body["vnc"] is True and body["status"] == "running"
    assert body["instance"] == "instance-0" and body["overlay"] is False
    with socket.create_connection(("127.0.0.1", emu.vnc_port), timeout=5) as vnc:
        assert vnc.recv(12) in (b"RFB 003.008\n", b"RFB 003.007\n", b"RFB 003.003\n")
    assert emu.health("/livez") == (200, {"qemu": True})
    assert "running" in emu.hmp("info status")
    info = emu.hmp("info network")
    assert "ne2k_pci" in info and "52:54:00:4c:4f:00" in info


@pytest.mark.qemu
def test_sigterm_stops_qemu_cleanly(emulator, boot_disks):
    emu = emulator(boot_disks["desktop"])
    emu.wait_healthy()
    emu.process.send_signal(signal.SIGTERM)
    assert emu.process.wait(15) == 0
    assert not emu.session_alive(), "QEMU outlived the entrypoint"
    log = emu.log.read_text()
    assert "stopping QEMU" in log and "QEMU stopped" in log


@pytest.mark.qemu
def test_qemu_quitting_ends_the_entrypoint(emulator, boot_disks):
    emu = emulator(boot_disks["desktop"])
    emu.wait_healthy()
    with contextlib.suppress(qmp.QmpError):  # QEMU may close the monitor before answering
        asyncio.run(qmp.run(str(emu.qmp), "quit"))
    assert emu.process.wait(15) == 0
    assert "QEMU exited by itself with status 0" in emu.log.read_text()


@pytest.mark.qemu
def test_qemu_failing_to_start_is_reported(emulator, boot_disks):
    with socket.create_server(("127.0.0.1", 0)) as blocker:  # QEMU cannot take this VNC port
        emu = emulator(boot_disks["desktop"], LOCO_VNC_DISPLAY=str(blocker.getsockname()[1] - 5900))
        assert emu.process.wait(30) != 0
        assert "loco: error: QEMU exited with status 1 while starting" in emu.log.read_text()


@pytest.mark.qemu
def test_vnc_password_is_set_over_qmp(emulator, boot_disks, tmp_path):
    secret = tmp_path / "vnc-password"
    secret.write_text("s3cret\n")
    emu = emulator(boot_disks["desktop"], LOCO_VNC_PASSWORD_FILE=str(secret))
    emu.wait_healthy()
    assert "s3cret" not in emu.log.read_text()

    async def connect(password):
        async with await rfb.RFBClient.connect("127.0.0.1", emu.vnc_port, password, timeout=10) as client:
            return client.width

    assert asyncio.run(connect("s3cret")) > 0
    with pytest.raises(rfb.RFBAuthError):
        asyncio.run(connect("wrong"))
    with pytest.raises(rfb.RFBAuthError, match="requires a VNC password"):
        asyncio.run(connect(None))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.qemu
def test_readonly_base_boots_an_overlay_and_stays_untouched(emulator, boot_disks, tmp_path):
    base = tmp_path / "base.qcow2"
    base.write_bytes(boot_disks["desktop"].read_bytes())
    subprocess.run(["qemu-img", "resize", "-q", str(base), "1M"], check=True)
    before = sha256(base)
    overlays = tmp_path / "overlays"
    env = {
        "LOCO_DISK_READONLY": "true",
        "LOCO_OVERLAY_DIR": str(overlays),
        "INSTANCE_ID": "instance-5",
        "NETWORK_MODE": "none",
    }

    emu = emulator(base, **env)
    body = emu.wait_healthy()
    overlay = overlays / "instance-5.qcow2"
    assert body["overlay"] is True and body["disk"] == str(overlay)
    # The guest's disk takes a real write, through QEMU's block layer as the guest's would.
    emu.hmp('qemu-io ide0-hd0 "write -P 0x5a 65536 4k"')
    assert emu.stop() == 0
    assert sha256(base) == before
    assert holds_pattern(overlay) and not holds_pattern(base)
    info = subprocess.run(
        ["qemu-img", "info", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    assert f"backing file: {base}" in info and "backing file format: qcow2" in info

    # A restart reuses the overlay: the write is still there, the base still untouched.
    emu = emulator(base, **env)
    emu.wait_healthy()
    assert "reusing overlay" in emu.log.read_text()
    assert emu.stop() == 0
    assert holds_pattern(overlay) and sha256(base) == before


def holds_pattern(image: Path) -> bool:
    """qemu-io (QEMU's own tool) reads back the 4 KiB the guest wrote."""
    check = ["qemu-io", "-r", "-c", "read -P 0x5a 65536 4k", str(image)]
    result = subprocess.run(check, capture_output=True, text=True)
    return result.returncode == 0 and "Pattern verification failed" not in result.stdout


@pytest.mark.qemu
def test_replaced_base_gets_a_fresh_overlay(emulator, boot_disks, tmp_path):
    base = tmp_path / "base.qcow2"
    base.write_bytes(boot_disks["desktop"].read_bytes())
    env = {"LOCO_DISK_READONLY": "1", "LOCO_OVERLAY_DIR": str(tmp_path / "ov"), "NETWORK_MODE": "none"}
    emulator(base, **env).wait_healthy()
    time.sleep(0.01)
    replacement = tmp_path / "new.qcow2"
    replacement.write_bytes(boot_disks["black"].read_bytes())
    os.replace(replacement, base)  # as a snapshot pull would
    emu = emulator(base, **env)
    emu.wait_healthy()
    assert "was made on another base image" in emu.log.read_text()


def socket_lan(free_port) -> dict[str, str]:
    """Socket LAN settings on loopback, on a port of their own."""
    return {"NETWORK_MODE": "socket", "SOCKET_PORT": str(free_port()), "LOCO_LAN_LISTEN": "127.0.0.1"}


def wait_waiting(emu) -> dict:
    """The health body once the entrypoint answers while it waits for the LAN hub."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, body = emu.health()
            if body.get("status") == "waiting":
                assert status == 503
                return body
        time.sleep(0.1)
    raise AssertionError(emu.log.read_text())


@pytest.mark.qemu
@pytest.mark.slow
def test_socket_lan_peer_waits_for_the_hub_on_instance_zero(emulator, boot_disks, tmp_path, free_port):
    lan = socket_lan(free_port)
    disks = []
    for name in ("a", "b"):
        disks.append(tmp_path / f"{name}.qcow2")
        disks[-1].write_bytes(boot_disks["desktop"].read_bytes())
    peer = emulator(disks[1], INSTANCE_ID="instance-1", SOCKET_MASTER_HOST="127.0.0.1", **lan)
    hub = f"127.0.0.1:{lan['SOCKET_PORT']}"
    body = wait_waiting(peer)  # instance 0 is not up: QEMU is not started yet, the pod stays alive
    assert body["waitingFor"] == f"the LAN hub at {hub}" and body["qemu"] is False
    assert peer.health("/livez")[0] == 200

    master = emulator(disks[0], INSTANCE_ID="instance-0", **lan)
    master.wait_healthy()
    assert peer.wait_healthy()["lan"] == {"role": "peer", "hub": hub, "connected": True, "reconnects": 0,
                                          "dropped": 0}
    deadline = time.monotonic() + 10
    while master.health()[1]["lan"]["peers"] != 2:  # both QEMUs, instance 0's own included
        assert time.monotonic() < deadline, master.health()
        time.sleep(0.2)
    assert master.health()[1]["lan"]["listen"] == hub
    assert f"socket: connect to {hub}" in master.hmp("info network")
    assert "socket: connect to 127.0.0.1:" in peer.hmp("info network")  # its uplink to the hub
    assert "waiting for the LAN hub" in peer.log.read_text()


def test_peer_gives_up_on_a_missing_hub_with_one_line(boot_disks, free_port):
    lan = socket_lan(free_port)
    env = {
        **lan,
        "DISK": str(boot_disks["desktop"]),
        "INSTANCE_ID": "instance-1",
        "SOCKET_MASTER_HOST": "127.0.0.1",
        "LOCO_LAN_WAIT": "1",
        "LOCO_HEALTH_LISTEN": "127.0.0.1",
        "LOCO_HEALTH_PORT": str(free_port()),
        "LOCO_QMP_SOCKET": f"/tmp/loco-test-{lan['SOCKET_PORT']}.qmp",
    }
    result = run_entrypoint(env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"loco: error: the LAN hub 127.0.0.1:{lan['SOCKET_PORT']} (instance 0) did not answer within 1s "
        "(Connection refused): is instance 0 running? (LOCO_LAN_WAIT sets the wait)"
    )
    assert "starting qemu" not in result.stderr.lower()


def test_sigterm_while_waiting_for_the_hub_exits_cleanly(emulator, boot_disks, free_port):
    emu = emulator(
        boot_disks["desktop"], INSTANCE_ID="instance-2", SOCKET_MASTER_HOST="127.0.0.1", **socket_lan(free_port)
    )
    wait_waiting(emu)
    emu.process.send_signal(signal.SIGTERM)
    assert emu.process.wait(10) == 0
    assert "stopped before QEMU started" in emu.log.read_text()


def test_hub_port_taken_fails_with_one_line(boot_disks, free_port):
    with socket.create_server(("127.0.0.1", 0)) as blocker:
        port = blocker.getsockname()[1]
        env = {
            "NETWORK_MODE": "socket",
            "SOCKET_PORT": str(port),
            "LOCO_LAN_LISTEN": "127.0.0.1",
            "DISK": str(boot_disks["desktop"]),
            "LOCO_HEALTH_LISTEN": "127.0.0.1",
            "LOCO_HEALTH_PORT": str(free_port()),
            "LOCO_QMP_SOCKET": f"/tmp/loco-test-{port}.qmp",
        }
        result = run_entrypoint(env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"loco: error: SOCKET_PORT={port}: the LAN hub cannot listen on 127.0.0.1 (Address already in use)"
    )
