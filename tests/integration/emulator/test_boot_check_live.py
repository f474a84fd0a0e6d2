"""``loco boot-check`` end to end: labelled Windows 98 screens served over a real
RFB connection, and real QEMU booting the test disks (desktop, dialog, black,
mode 13h), with None and VNC-auth security; failures leave a PNG and a state."""

import asyncio
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image
from rfbserver import fixture_screen

from loco_lan.bootcheck import boot_check
from loco_lan.screen import analyse


def loco(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=os.environ,
    )


def check(port: int, **options):
    options = {"timeout": 10, "interval": 0.2, "settle": 0.5, **options}
    return asyncio.run(boot_check("127.0.0.1", port, **options))


def test_desktop_screen_passes(screen_server):
    server = screen_server(fixture_screen("d0.png"))
    result = check(server.port)
    assert (result.ok, result.state, result.screenshot) == (True, "desktop", None)


def test_game_screen_fails_naming_it_and_saving_the_frame(screen_server, tmp_path):
    image = fixture_screen("L0c.png")
    server = screen_server(image)
    result = check(server.port, timeout=3, screenshot=tmp_path / "last.png")
    assert (result.ok, result.state, result.screenshot) == (False, "game", tmp_path / "last.png")
    assert np.array_equal(np.asarray(Image.open(result.screenshot).convert("RGB")), image)


def test_boot_to_desktop_across_a_resolution_change(screen_server):
    """640x480 setup wizard without taskbar, then the 1024x768 desktop: a DesktopSize
    change on the wire, and the check passes once the desktop holds."""
    server = screen_server(fixture_screen("w0-cancel.png"))
    desktop = fixture_screen("s0.png")
    threading.Timer(1.0, server.do, (server.server.show, desktop)).start()
    result = check(server.port)
    assert (result.ok, result.state) == (True, "desktop")
    assert result.elapsed >= 1.0
    assert server.server.encodings_sent[-223] == 1


def test_cli_with_password_file(screen_server, tmp_path):
    secret = tmp_path / "vnc.pw"
    secret.write_text("loco\n")
    server = screen_server(fixture_screen("n0-id.png"), password="loco", version=3)
    target = f"127.0.0.1:{server.port}"
    shot = tmp_path / "dialog.png"
    args = ["--vnc", target, "--password-file", str(secret), "--timeout", "2", "--interval", "0.2"]
    failed = loco("boot-check", *args, "--screenshot", str(shot))
    assert failed.returncode == 1
    assert failed.stdout.startswith(f"{target}\tdialog\tFAILED after ")
    assert failed.stdout.rstrip().endswith(f"last screen saved to {shot}")
    assert analyse(shot).state == "desktop-dialog"

    accepted = loco(
        "boot-check", *args, "--accept", "desktop", "--accept", "dialog", "--settle", "0", "--json"
    )
    assert accepted.returncode == 0
    report = json.loads(accepted.stdout)
    assert (report["target"], report["ok"], report["state"], report["screenshot"]) == (
        target,
        True,
        "dialog",
        None,
    )


def test_wrong_password_fails_at_once(screen_server, tmp_path):
    secret = tmp_path / "vnc.pw"
    secret.write_text("nope")
    server = screen_server(fixture_screen("d0.png"), password="loco")
    result = loco(
        "boot-check",
        "--vnc",
        f"127.0.0.1:{server.port}",
        "--password-file",
        str(secret),
        "--timeout",
        "60",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "\tno-vnc\tFAILED" in result.stdout and "rejected us" in result.stdout
    assert not list(tmp_path.glob("*.png"))


def test_nothing_listening_is_no_vnc(free_port, tmp_path):
    result = loco(
        "boot-check", "--vnc", f"127.0.0.1:{free_port()}", "--timeout", "1", "--interval", "0.3", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "\tno-vnc\tFAILED" in result.stdout and "cannot connect to VNC" in result.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.qemu
def test_qemu_desktop_passes_with_vnc_password(emulator, boot_disks, tmp_path):
    secret = tmp_path / "vnc.pw"
    secret.write_text("loco98\n")
    emu = emulator(boot_disks["desktop"], LOCO_VNC_PASSWORD_FILE=str(secret))
    # Until the entrypoint hands QEMU the password over QMP, QEMU refuses every
    # password; readiness (the health endpoint) says when it has, as in a cluster.
    emu.wait_healthy()
    result = loco(
        "boot-check",
        "--vnc",
        f"127.0.0.1:{emu.vnc_port}",
        "--password-file",
        str(secret),
        "--timeout",
        "60",
        "--interval",
        "0.5",
        "--settle",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"127.0.0.1:{emu.vnc_port}\tdesktop\tok after ")


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("disk", "state", "size"),
    [
        ("dialog", "dialog", (640, 480)),
        ("black", "black", (640, 480)),
        ("pattern", "booting", (640, 400)),
        ("no-shell", "booting", (640, 480)),
    ],
)
def test_qemu_screens_that_are_not_the_desktop(emulator, boot_disks, tmp_path, disk, state, size):
    """The forced failures: each names what it saw and leaves the last screen as PNG."""
    emu = emulator(boot_disks[disk])
    emu.wait_healthy()
    # First until the guest has painted (accepting that state), then the real check fails on it.
    assert check(emu.vnc_port, timeout=60, accept=(state,)).ok
    shot = tmp_path / f"{disk}.png"
    result = check(emu.vnc_port, timeout=1, interval=0.3, screenshot=shot)
    assert (result.ok, result.state, result.screenshot) == (False, state, shot), result.detail
    with Image.open(shot) as png:
        assert png.size == size


def test_cli_result_line_and_log_lines_never_share_a_line(screen_server):
    """What a terminal shows (stdout and stderr on one stream): every line is whole, a log line or
    the result line, never one run into the other."""
    server = screen_server(fixture_screen("d0.png"))
    target = f"127.0.0.1:{server.port}"
    run = subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", "boot-check", "--vnc", target, "--timeout", "20", "--interval", "0.2",
         "--settle", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout
    assert run.stdout.endswith("\n")
    lines = run.stdout.splitlines()
    results = [line for line in lines if line.startswith(f"{target}\t")]
    assert len(results) == 1 and results[0].startswith(f"{target}\tdesktop\tok after "), lines
    logs = [line for line in lines if line not in results]
    assert logs and all(" INFO " in line and target not in line.split(" INFO ", 1)[0] for line in logs), lines
