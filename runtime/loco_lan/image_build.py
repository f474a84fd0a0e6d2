"""Rebuild a snapshot when no registry can supply one.

From a source disk (VHD/VHDX, VMDK, raw or qcow2) ``qemu-img convert`` writes a
compressed qcow2; from an ISO a blank disk is created and the installer boots under
QEMU with the guest hardware the snapshot expects, and the build continues when the
guest powers off.  Either way the result gets a ``<image>.sha256`` file and can be
pushed with the project's OCI client.  ``python -m loco_lan.image_build`` is
``loco snapshot rebuild``.
"""

import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write, file_sha256
from loco_lan.oci import Client
from loco_lan.progress import Progress
from loco_lan.snapshot import check_qcow2, push, qemu_tool, staged, virtual_size

log = logging.getLogger(__name__)

FORMAT_BY_SUFFIX = {
    ".vhd": "vpc",
    ".vpc": "vpc",
    ".vhdx": "vhdx",
    ".vmdk": "vmdk",
    ".qcow2": "qcow2",
    ".img": "raw",
    ".raw": "raw",
}
VGA_CHOICES = ("std", "vmware")
DEFAULT_DISK_SIZE = "2G"
DEFAULT_MEMORY_MB = 512
DEFAULT_INSTALL_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class Built:
    path: str
    sha256: str
    size: int
    virtual_size: int
    pushed_digest: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def source_format(source: Path, given: str | None = None) -> str:
    """The qemu-img format of ``source``: given, else by suffix, else as qemu-img detects it."""
    if given:
        return given
    if source.suffix.lower() in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[source.suffix.lower()]
    command = [qemu_tool("qemu-img"), "info", "--output=json", str(source)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(r'"format":\s*"([\w-]+)"', done.stdout)
    if done.returncode or not match:
        raise LocoError(f"cannot tell the disk format of {source}; name it (vpc, vhdx, vmdk, raw, qcow2)")
    return match[1]


def convert(source: Path, dest: Path, *, fmt: str | None = None, progress: bool = False) -> None:
    """Write ``source`` to ``dest`` as a compressed qcow2 (atomically, checked before it lands)."""
    if not source.is_file():
        raise LocoError(f"source disk {source} does not exist")
    fmt = source_format(source, fmt)
    command = [qemu_tool("qemu-img"), "convert", "-f", fmt, "-O", "qcow2", "-c", "-o", "compat=1.1"]
    with staged(dest) as tmp:
        _run_convert([*command, *(["-p"] if progress else []), str(source), str(tmp)], source, progress)
        check_qcow2(tmp)


def _run_convert(command: list[str], source: Path, progress: bool) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if progress:  # qemu-img -p redraws "(12.34/100%)"; show it in our reporter, in source bytes
        total = source.stat().st_size
        with Progress(f"converting {source.name}", total) as shown:
            while chunk := process.stdout.read1(4096):
                for percent in re.findall(rb"\((\d+(?:\.\d+)?)/100%\)", chunk):
                    shown.reset(int(float(percent) / 100 * total))
                shown.update(0)
    errors = process.stderr.read().decode(errors="replace")
    if process.wait():
        reason = (errors.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
        raise LocoError(f"qemu-img convert of {source} failed: {reason}")


def qemu_install_command(
    iso: Path, disk: Path, *, memory: int, vga: str, vnc: str, accel: str
) -> list[str]:
    """QEMU for the installer: the guest hardware the snapshot expects, booting the CD once."""

    def drive(path: Path) -> str:
        return str(path).replace(",", ",,")  # QEMU option syntax escapes commas by doubling

    return [
        qemu_tool("qemu-system-i386"),
        "-machine", "pc", "-accel", accel, "-cpu", "pentium2", "-m", str(memory),
        "-drive", f"file={drive(disk)},format=qcow2,if=ide,index=0,media=disk",
        "-drive", f"file={drive(iso)},format=raw,if=ide,index=2,media=cdrom,readonly=on",
        "-boot", "order=c,once=d",
        "-vga", vga,
        "-netdev", "user,id=lan", "-device", "ne2k_pci,netdev=lan",
        "-audiodev", "none,id=snd", "-device", "sb16,audiodev=snd",
        "-rtc", "base=localtime",
        "-display", "none", "-vnc", vnc,
    ]  # fmt: skip


def install_from_iso(
    iso: Path,
    dest: Path,
    *,
    disk_size: str = DEFAULT_DISK_SIZE,
    memory: int = DEFAULT_MEMORY_MB,
    vga: str = "std",
    vnc: str = "127.0.0.1:0",
    timeout: float = DEFAULT_INSTALL_TIMEOUT,
    progress: bool = False,
) -> None:
    """Boot the installer on a blank disk; when the guest powers off, compress the disk into ``dest``."""
    if not iso.is_file():
        raise LocoError(f"installer ISO {iso} does not exist")
    if vga not in VGA_CHOICES:
        raise LocoError(f"unknown VGA {vga!r}; use one of {', '.join(VGA_CHOICES)}")
    accel = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".install.qcow2", dir=dest.parent)
    os.close(fd)
    work = Path(name)
    try:
        created = subprocess.run(
            [qemu_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(work), disk_size],
            capture_output=True, text=True, check=False,
        )
        if created.returncode:
            raise LocoError(f"cannot create a {disk_size} disk: {created.stderr.strip()}")
        command = qemu_install_command(iso, work, memory=memory, vga=vga, vnc=vnc, accel=accel)
        log.info("installer running: use VNC at %s; building resumes when the guest powers off", vnc)
        with subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as qemu:
            try:
                _, errors = qemu.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.communicate()
                message = f"the installer did not power off within {timeout:.0f} s; nothing written"
                raise LocoError(message) from None
        if qemu.returncode:
            reason = (errors.decode(errors="replace").strip().splitlines() or [f"exit {qemu.returncode}"])[-1]
            raise LocoError(f"QEMU failed running the installer: {reason}")
        convert(work, dest, fmt="qcow2", progress=progress)
    finally:
        work.unlink(missing_ok=True)


def write_sha256(image: Path) -> str:
    """Write ``<image>.sha256`` in ``sha256sum`` format; returns ``sha256:<hex>``."""
    digest = file_sha256(image)
    atomic_write(image.with_name(image.name + ".sha256"), f"{digest.split(':', 1)[1]}  {image.name}\n")
    return digest


def rebuild(
    dest: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    source_fmt: str | None = None,
    iso: str | os.PathLike | None = None,
    push_to: str | None = None,
    client: Client | None = None,
    progress: bool = False,
    **install,
) -> Built:
    """Build ``dest`` from a source disk or an installer ISO, write its sha256, optionally push it."""
    dest = Path(dest)
    if (source is None) == (iso is None):
        raise LocoError("rebuild needs exactly one of a source disk or an installer ISO")
    if source is not None:
        convert(Path(source), dest, fmt=source_fmt, progress=progress)
    else:
        install_from_iso(Path(iso), dest, progress=progress, **install)
    digest = write_sha256(dest)
    pushed = None
    if push_to:
        if client is None:
            raise LocoError("pushing a rebuilt image needs a registry client")
        pushed = push(dest, push_to, client=client, source=str(source or iso), progress=progress).digest
    return Built(str(dest), digest, dest.stat().st_size, virtual_size(dest), pushed)


def main(argv: list[str] | None = None) -> int:
    from loco_lan.cli import main as cli_main

    return cli_main(["snapshot", "rebuild", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
