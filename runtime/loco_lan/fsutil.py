"""Atomic file replacement: readers see the old file or the new one, never half; config files
read with one clear error; a file's sha256."""

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from loco_lan.errors import LocoError


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: int = 0o644, binary: bool = True) -> Iterator[IO]:
    """Yield a temp file beside ``path``; on clean exit fsync it, rename it over ``path`` and fsync
    the directory (without that, a power cut can lose the rename: the old file comes back).

    On any exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically."""
    binary = isinstance(data, bytes)
    with atomic_writer(path, mode=mode, binary=binary) as handle:
        handle.write(data)


def read_json(path: str | os.PathLike, what: str):
    """The JSON in ``path``; LocoError naming ``what`` and the path when it is missing or bad."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LocoError(f"{what} {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise LocoError(f"{what} {path} is unreadable: {exc}") from exc


def file_sha256(path: str | os.PathLike, progress: bool = False) -> str:
    """The file's digest as OCI writes it, ``sha256:<hex>``; ``progress`` shows a bar for big files."""
    from loco_lan.progress import Progress  # only when asked: a bar is for people

    path = Path(path)
    digest = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    shown = Progress(f"hashing {path.name}", path.stat().st_size) if progress else None
    with path.open("rb") as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            if shown:
                shown.update(count)
    if shown:
        shown.close()
    return "sha256:" + digest.hexdigest()
