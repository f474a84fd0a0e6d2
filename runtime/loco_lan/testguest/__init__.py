"""The test guest: a small Linux that stands in for the Windows 98 snapshot on the game LAN.

The snapshot cannot be fetched everywhere and the demo guest (:mod:`loco_lan.demoguest`) has no
network stack, so the LAN is proven with this guest instead. It boots in seconds under TCG on the
snapshot's own hardware (``pc``, ``pentium2``, IDE disk, ``ne2k_pci``, std VGA) and:

- takes ``192.168.10.<ordinal+10>/24`` on its LAN card (the ordinal is the last byte of the MAC
  the emulator gives each instance) and an IPv6 link-local address, and answers ARP and ping;
- answers on TCP and UDP 2300 and 47624 as a DirectPlay host would (``src/lanagent.c``, in the
  network check's wire format);
- serves a guest channel on COM1 (:mod:`loco_lan.guestchannel`) through which the network checks
  run inside it;
- shows the demo program (``loco-screen``, :func:`loco_lan.demoguest.screen_program`) on a VESA
  framebuffer, so it is also a playable screen in the streaming gateway.

It is built here from Debian packages: the distribution's i386 kernel (``linux-image-686``) with
its ``ne2k-pci`` module, ``busybox-static``, and the two programs compiled with the system's gcc,
into a FAT disk that syslinux boots, as a qcow2 the snapshot, upload and chart paths carry like
any other disk. ``scripts/setup.sh`` puts the two packages in ``~/.cache/loco-lan/debs``.
"""

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from loco_lan import demoguest
from loco_lan.errors import LocoError

DEBS_DIR = Path(os.environ.get("LOCO_DEBS_DIR") or Path.home() / ".cache/loco-lan/debs")
PACKAGES = {"kernel": "linux-image-*-686_*_i386.deb", "busybox": "busybox-static_*_i386.deb"}
MODULES = ("8390", "ne2k-pci")  # in load order
DISK_MB = 24
SUBNET = "192.168.10.0/24"
FIRST_HOST = 10  # instance N takes 192.168.10.(N + 10)
SYSLINUX_CFG = """DEFAULT loco
PROMPT 0
TIMEOUT 0
LABEL loco
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=tty0 vga=0x311 noapic nolapic quiet loglevel=3
"""
CFLAGS = ["-m32", "-march=pentium2", "-static", "-Os", "-Wall", "-Werror", "-Wl,--build-id=none"]


def address(ordinal: int) -> str:
    """The IPv4 address instance ``ordinal`` takes on the LAN."""
    return f"192.168.10.{ordinal + FIRST_HOST}"


def packages(debs: Path = DEBS_DIR) -> dict[str, Path]:
    found = {}
    for role, pattern in PACKAGES.items():
        matches = sorted(debs.glob(pattern))
        if not matches:
            raise LocoError(f"the test guest needs {pattern} in {debs}: run scripts/setup.sh (it downloads it)")
        found[role] = matches[-1]
    return found


def _run(command: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as exc:
        raise LocoError(f"building the test guest needs {command[0]}: run scripts/setup.sh") from exc
    except subprocess.CalledProcessError as exc:
        raise LocoError(f"building the test guest failed: {' '.join(command)}: {exc.stderr.strip()}") from exc


def cpio(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A newc initramfs archive of (path, mode, data, rdev) entries; times and owners are zero, so
    the same files give the same bytes."""
    out = io.BytesIO()
    for inode, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], start=1):
        encoded = name.encode() + b"\0"
        fields = [inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(encoded), 0]
        out.write(b"070701" + b"".join(f"{value:08x}".encode() for value in fields) + encoded)
        out.write(bytes(-out.tell() % 4))
        out.write(data)
        out.write(bytes(-out.tell() % 4))
    return out.getvalue()


def initramfs(files: dict[str, Path]) -> bytes:
    """The gzipped initramfs: ``files`` (archive path -> file) plus the directories and the console."""
    parents = {str(parent) for name in files for parent in Path(name).parents}
    directories = sorted((parents | {"dev", "proc", "sys", "tmp", "etc"}) - {"."})
    entries = [(d, 0o40755, b"", 0) for d in directories]
    entries.append(("dev/console", 0o20600, b"", (5 << 8) | 1))
    for name, path in sorted(files.items()):
        entries.append((name, 0o100755 if os.access(path, os.X_OK) else 0o100644, path.read_bytes(), 0))
    return gzip.compress(cpio(entries), mtime=0)


def build_image(workdir: Path, debs: Path = DEBS_DIR) -> Path:
    """The raw FAT disk at ``workdir/testguest.raw``."""
    found = packages(debs)
    for role, deb in found.items():
        _run(["dpkg-deb", "-x", str(deb), str(workdir / role)])
    kernel = next((workdir / "kernel/boot").glob("vmlinuz-*"))
    modules = {}
    for index, name in enumerate(MODULES):
        module = next((workdir / "kernel/lib/modules").rglob(f"{name}.ko"), None)
        if module is None:
            raise LocoError(f"{found['kernel'].name} has no {name}.ko")
        modules[f"lib/modules/{index}-{name}.ko"] = module
    source = resources.files(__package__) / "src"
    (workdir / "lanagent.c").write_bytes((source / "lanagent.c").read_bytes())
    _run(["gcc", *CFLAGS, "-o", "loco-lan", "lanagent.c"], workdir)
    screen = workdir / "screen"
    screen.mkdir()
    (workdir / "init").write_bytes((source / "init").read_bytes())
    (workdir / "init").chmod(0o755)
    files = {
        "init": workdir / "init",
        "bin/busybox": workdir / "busybox/bin/busybox",
        "bin/loco-lan": workdir / "loco-lan",
        **modules,
        **demoguest.screen_program(screen),
    }
    (workdir / "initrd.gz").write_bytes(initramfs(files))
    (workdir / "syslinux.cfg").write_text(SYSLINUX_CFG)
    shutil.copyfile(kernel, workdir / "vmlinuz")
    raw = workdir / "testguest.raw"
    _run(["mkfs.fat", "-C", "-i", "4c4f434f", "-n", "LOCOLAN", str(raw), str(DISK_MB * 1024)])
    for name in ("vmlinuz", "initrd.gz", "syslinux.cfg"):
        os.utime(workdir / name, (0, 0))
        _run(["mcopy", "-m", "-i", str(raw), str(workdir / name), f"::{name}"])
    _run(["syslinux", "--install", str(raw)])
    return raw


def make_disk(path: Path, debs: Path = DEBS_DIR) -> Path:
    """The test guest as a qcow2 image at ``path``."""
    with tempfile.TemporaryDirectory() as scratch:
        raw = build_image(Path(scratch), debs)
        _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)])
    return path


def inputs_digest(debs: Path = DEBS_DIR) -> str:
    """What the disk is built from (packages and sources): the same inputs give the same guest."""
    digest = hashlib.sha256()
    for deb in packages(debs).values():
        digest.update(deb.name.encode())
    for source in (resources.files(__package__) / "src", resources.files(demoguest.__name__) / "src"):
        for item in sorted(source.iterdir(), key=lambda i: i.name):
            digest.update(item.name.encode() + item.read_bytes())
    digest.update(SYSLINUX_CFG.encode())
    return digest.hexdigest()


def ensure(path: str | Path, check_mode: bool = False, debs: Path = DEBS_DIR) -> tuple[bool, str]:
    """Make ``path`` the test guest's disk; returns (changed, sha256 of the disk). A disk built from
    the same inputs (recorded beside it) is kept: FAT and syslinux stamp times into the image, so
    two builds are not byte for byte the same."""
    path = Path(path)
    stamp = path.with_name(path.name + ".inputs")
    wanted = inputs_digest(debs)
    if path.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return False, _sha256(path)
    if check_mode:
        return True, ""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        fresh = make_disk(Path(scratch) / "testguest.qcow2", debs)
        digest = _sha256(fresh)
        fresh.replace(path)
    stamp.write_text(wanted + "\n")
    return True, digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
