"""The disk the guest boots: the base image itself, or a per-instance overlay on it.

A read-only base (shared by every emulator, or on a read-only volume) is never
written: each instance boots a qcow2 overlay whose backing file is the base.
The overlay is kept across restarts while the base it was made on is unchanged.
"""

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from loco_lan.emulator.config import EmulatorConfig
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write

log = logging.getLogger(__name__)

QCOW2_MAGIC = b"QFI\xfb"


def check_qcow2(path: Path, variable: str) -> None:
    """Fail with one line naming ``variable`` and ``path`` unless it is a readable qcow2 file."""
    named = (
        f"{variable}={path}" if variable != "default" else f"default disk {path} (LOCO_DISK and DISK unset)"
    )
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        raise LocoError(f"{named}: no such file") from None
    except IsADirectoryError:
        raise LocoError(f"{named}: is a directory, not a qcow2 image") from None
    except OSError as exc:
        raise LocoError(f"{named}: cannot read it ({exc.strerror})") from None
    if magic != QCOW2_MAGIC:
        raise LocoError(f"{named}: not a qcow2 image")


def prepare_disk(config: EmulatorConfig) -> tuple[Path, bool]:
    """Check the base and return ``(path to boot, is_overlay)``."""
    check_qcow2(config.disk, config.disk_variable)
    base = config.disk.resolve()
    if not config.disk_readonly and os.access(base, os.W_OK):
        return base, False
    return ensure_overlay(base, config.overlay_dir / f"{config.instance_id}.qcow2"), True


def ensure_overlay(base: Path, overlay: Path) -> Path:
    """Reuse ``overlay`` if it was made on this very base file, else (re)create it atomically."""
    stamp_path = overlay.with_name(overlay.name + ".base.json")
    stat = base.stat()
    stamp = {"base": str(base), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    if overlay.exists():
        try:
            recorded = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded == stamp:
            log.info("reusing overlay %s on %s", overlay, base)
            return overlay
        log.warning("overlay %s was made on another base image: starting a fresh one on %s", overlay, base)
    qemu_img = shutil.which("qemu-img")
    if not qemu_img:
        raise LocoError("qemu-img not found on PATH: install qemu-utils to create the disk overlay")
    try:
        overlay.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocoError(f"LOCO_OVERLAY_DIR={overlay.parent}: cannot create it ({exc.strerror})") from None
    temporary = overlay.with_name(f".{overlay.name}.tmp")
    result = subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(temporary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        temporary.unlink(missing_ok=True)
        message = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise LocoError(f"cannot create overlay {overlay} on {base}: {message}")
    os.replace(temporary, overlay)
    atomic_write(stamp_path, json.dumps(stamp) + "\n")
    log.info("created overlay %s on read-only base %s", overlay, base)
    return overlay
