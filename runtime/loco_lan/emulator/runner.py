"""Run one emulator: check the disk, start QEMU, serve health, stop cleanly on SIGTERM."""

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from loco_lan import qmp
from loco_lan.emulator.config import EmulatorConfig
from loco_lan.emulator.disk import prepare_disk
from loco_lan.emulator.health import HealthServer
from loco_lan.emulator.qemu import build_command
from loco_lan.errors import LocoError

log = logging.getLogger(__name__)
QMP_WAIT = 15.0


def resolve_accel(wanted: str) -> str:
    """``auto`` means KVM when this process may use /dev/kvm, else TCG (software)."""
    if wanted == "auto":
        return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    if wanted not in ("kvm", "tcg"):
        raise LocoError(f"LOCO_ACCEL={wanted!r}: expected auto, kvm or tcg")
    return wanted


def plan(config: EmulatorConfig) -> tuple[list[str], Path, bool]:
    """The QEMU command, the disk it boots and whether that is an overlay.
    Checks the disk (and makes the overlay) on the way."""
    disk, overlay = prepare_disk(config)
    return build_command(config, disk, resolve_accel(config.accel)), disk, overlay


async def run(config: EmulatorConfig) -> int:
    command, disk, overlay = plan(config)
    if not shutil.which(command[0]):
        raise LocoError(f"{command[0]} not found on PATH: install qemu-system-x86 (or set LOCO_QEMU)")
    try:
        config.qmp_socket.parent.mkdir(parents=True, exist_ok=True)
        config.qmp_socket.unlink(missing_ok=True)  # a stale socket from a previous run
    except OSError as exc:
        raise LocoError(f"LOCO_QMP_SOCKET={config.qmp_socket}: cannot prepare it ({exc.strerror})") from None
    if config.vnc_password is not None and len(config.vnc_password) > 8:
        log.warning("VNC passwords are cut to 8 characters by the protocol; only the first 8 count")

    log.info("starting %s", shlex.join(command))
    process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.DEVNULL)
    vnc_host = "127.0.0.1" if config.vnc_listen in ("0.0.0.0", "::", "") else config.vnc_listen
    health = HealthServer(
        lambda: process.returncode is None,
        vnc_host,
        config.vnc_port,
        {"instance": config.instance_id, "disk": str(disk), "overlay": overlay},
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    stopper = asyncio.create_task(_stop_when(stopping, process, config.stop_timeout))
    try:
        await health.start(config.health_listen, config.health_port)
        log.info("health endpoint on %s:%d", config.health_listen, health.port)
        await _configure(config, process, stopping)
        health.configured = True
        code = await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    finally:
        stopper.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await health.stop()
    if stopping.is_set() and code in (0, -signal.SIGTERM):
        log.info("QEMU stopped")
        return 0
    if code == 0:
        log.info("QEMU exited by itself with status 0 (the guest shut down, or QMP quit)")
        return 0
    log.error("QEMU exited with status %d", code)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128+N


async def _configure(
    config: EmulatorConfig, process: asyncio.subprocess.Process, stopping: asyncio.Event
) -> None:
    """Wait for QEMU's monitor, then hand it the VNC password (kept off the command line)."""
    deadline = time.monotonic() + QMP_WAIT
    while not stopping.is_set():
        if process.returncode is not None:
            raise LocoError(
                f"QEMU exited with status {process.returncode} while starting (see its message above)"
            )
        try:
            if config.vnc_password is not None:
                await qmp.run(
                    str(config.qmp_socket),
                    "set_password",
                    {"protocol": "vnc", "password": config.vnc_password},
                )
            else:
                await qmp.run(str(config.qmp_socket), "query-status")
            return
        except qmp.QmpError as exc:
            if time.monotonic() > deadline:
                raise LocoError(
                    f"QEMU's monitor {config.qmp_socket} did not answer within {QMP_WAIT:g}s: {exc}"
                ) from exc
            await asyncio.sleep(0.1)


async def _stop_when(stopping: asyncio.Event, process: asyncio.subprocess.Process, grace: float) -> None:
    """On SIGTERM/SIGINT pass SIGTERM to QEMU (it flushes its disks and exits), kill after ``grace``."""
    await stopping.wait()
    if process.returncode is not None:
        return
    log.info("stopping QEMU")
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        log.warning("QEMU still running %gs after SIGTERM: killing it", grace)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
