"""Run one emulator: check the disk, join the LAN (instance 0 runs its hub), start QEMU,
serve health, stop cleanly on SIGTERM."""

import asyncio
import contextlib
import hashlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from loco_lan import qmp
from loco_lan.emulator.config import EmulatorConfig
from loco_lan.emulator.disk import prepare_disk
from loco_lan.emulator.health import HealthServer
from loco_lan.emulator.lanhub import LanHub, LanUplink, socket_error
from loco_lan.emulator.qemu import build_command
from loco_lan.errors import LocoError

log = logging.getLogger(__name__)
QMP_WAIT = 15.0
HUB_PROBE_TIMEOUT = 3.0  # one TCP connect to the LAN hub
HUB_RETRY = 1.0  # seconds between tries
HUB_NOTE_EVERY = 15.0  # seconds between "still waiting" log lines


KVM_PROBE_TIMEOUT = 5.0
# kvmprobe.S assembled: protected mode, one timer interrupt and its IRET, then QEMU's
# isa-debug-exit port (QEMU exits with status 99).
KVM_PROBE_SECTOR = bytes.fromhex(
    "fa31c08ed80f0116787c0f20c00c010f22c0ea177c080066b810008ed88ec08ed0bc00700000c70540100000517c08"
    "00c70544100000008e00000f011d7e7c0000fb803d002000000074f7fab031e6f4f450c6050020000001b020e62058"
    "cf900000000000000000ffff0000009acf00ffff00000092cf001700607c000047000010"
).ljust(510, b"\0") + b"\x55\xaa"


def resolve_accel(wanted: str, qemu: str = "qemu-system-i386") -> str:
    """``auto`` means KVM when this process may use /dev/kvm and KVM really runs a guest there,
    else TCG (software)."""
    if wanted == "auto":
        return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) and kvm_runs_guests(qemu) else "tcg"
    if wanted not in ("kvm", "tcg"):
        raise LocoError(f"LOCO_ACCEL={wanted!r}: expected auto, kvm or tcg")
    return wanted


def probe_command(qemu: str, accel: str, sector: str) -> list[str]:
    return [qemu, "-machine", "pc", "-accel", accel, "-m", "8", "-display", "none", "-vga", "none",
            "-nodefaults", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive", f"file={sector},format=raw,if=ide,snapshot=on"]


def kvm_runs_guests(qemu: str) -> bool:
    """Boot the probe sector under KVM: a /dev/kvm that opens but cannot run a guest (seen with
    some nested virtualisation: one fails at once, another on the first IRET) would hang every
    emulator. The verdict is kept for this boot
    of the machine, in the temporary directory."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip() if Path(
        "/proc/sys/kernel/random/boot_id").exists() else "unknown"
    probe = hashlib.sha256(KVM_PROBE_SECTOR).hexdigest()[:8]  # a new probe is asked afresh
    verdict = Path(tempfile.gettempdir()) / f"loco-lan-kvm-{os.getuid()}-{boot_id}-{probe}"
    if verdict.exists():
        return verdict.read_text() == "works"
    with tempfile.NamedTemporaryFile(suffix=".raw") as sector:
        sector.write(KVM_PROBE_SECTOR)
        sector.flush()
        try:
            works = subprocess.run(probe_command(qemu, "kvm", sector.name), capture_output=True,
                                   timeout=KVM_PROBE_TIMEOUT).returncode == 99
        except (OSError, subprocess.TimeoutExpired):
            works = False
    if not works:
        log.warning("/dev/kvm is there but KVM does not run a guest: using TCG (set LOCO_ACCEL=kvm to insist)")
    verdict.write_text("works" if works else "broken")
    return works


def plan(config: EmulatorConfig) -> tuple[list[str], Path, bool]:
    """The QEMU command, the disk it boots and whether that is an overlay.
    Checks the disk (and makes the overlay) on the way."""
    disk, overlay = prepare_disk(config)
    return build_command(config, disk, resolve_accel(config.accel, config.qemu_binary)), disk, overlay


async def run(config: EmulatorConfig) -> int:
    disk, overlay = prepare_disk(config)
    if not shutil.which(config.qemu_binary):
        raise LocoError(f"{config.qemu_binary} not found on PATH: install qemu-system-x86 (or set LOCO_QEMU)")
    accel = resolve_accel(config.accel, config.qemu_binary)
    try:
        config.qmp_socket.parent.mkdir(parents=True, exist_ok=True)
        config.qmp_socket.unlink(missing_ok=True)  # a stale socket from a previous run
    except OSError as exc:
        raise LocoError(f"LOCO_QMP_SOCKET={config.qmp_socket}: cannot prepare it ({exc.strerror})") from None
    if config.vnc_password is not None and len(config.vnc_password) > 8:
        log.warning("VNC passwords are cut to 8 characters by the protocol; only the first 8 count")

    hub = LanHub() if config.runs_lan_hub else None
    uplink = LanUplink(*config.lan_hub) if config.network_mode == "socket" and not hub else None
    process: asyncio.subprocess.Process | None = None
    vnc_host = "127.0.0.1" if config.vnc_listen in ("0.0.0.0", "::", "") else config.vnc_listen
    health = HealthServer(
        lambda: process is not None and process.returncode is None,
        vnc_host,
        config.vnc_port,
        {"instance": config.instance_id, "disk": str(disk), "overlay": overlay},
        lan=hub.status if hub else uplink.status if uplink else None,
        hub=hub,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await health.start(config.health_listen, config.health_port)
        log.info("health endpoint on %s:%d", config.health_listen, health.port)
        lan = None  # where QEMU's socket netdev connects: the hub, or for the others their uplink
        if hub:
            await hub.start(config.lan_listen, config.socket_port)
        elif uplink:
            health.waiting = "the LAN hub at {}:{}".format(*config.lan_hub)
            await wait_for_hub(*config.lan_hub, config.lan_wait, stopping)
            health.waiting = None
            lan = ("127.0.0.1", await uplink.start())
        if stopping.is_set():
            log.info("stopped before QEMU started")
            return 0
        command = build_command(config, disk, accel, lan)
        log.info("starting %s", shlex.join(command))
        process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.DEVNULL)
        code = await _supervise(config, process, stopping, health)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if hub:
            await hub.stop()
        if uplink:
            await uplink.stop()
        await health.stop()
    if stopping.is_set() and code in (0, -signal.SIGTERM):
        log.info("QEMU stopped")
        return 0
    if code == 0:
        log.info("QEMU exited by itself with status 0 (the guest shut down, or QMP quit)")
        return 0
    log.error("QEMU exited with status %d", code)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128+N


async def wait_for_hub(host: str, port: int, timeout: float, stopping: asyncio.Event) -> None:
    """Return once ``host:port`` accepts TCP, or when stopping; LocoError after ``timeout`` seconds.

    QEMU's socket netdev tries its connect once and exits if nobody listens, so a peer
    that boots before instance 0 waits here rather than starting QEMU again and again.
    """
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while not stopping.is_set():
        try:
            async with asyncio.timeout(HUB_PROBE_TIMEOUT):
                _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            log.info("LAN hub %s:%d answers", host, port)
            return
        except (OSError, TimeoutError) as exc:
            reason = socket_error(exc)
        now = time.monotonic()
        if now >= deadline:
            raise LocoError(
                f"the LAN hub {host}:{port} (instance 0) did not answer within {timeout:g}s ({reason}): "
                "is instance 0 running? (LOCO_LAN_WAIT sets the wait)"
            )
        if now >= next_note:
            log.info("waiting for the LAN hub %s:%d on instance 0 (%s)", host, port, reason)
            next_note = now + HUB_NOTE_EVERY
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), min(HUB_RETRY, max(deadline - now, 0.01)))


async def _supervise(
    config: EmulatorConfig, process: asyncio.subprocess.Process, stopping: asyncio.Event, health: HealthServer
) -> int:
    """Configure QEMU, then wait for it to exit; SIGTERM/SIGINT stop it, any failure kills it."""
    stopper = asyncio.create_task(_stop_when(stopping, process, config.stop_timeout))
    try:
        await _configure(config, process, stopping)
        health.configured = True
        return await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    finally:
        stopper.cancel()


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
