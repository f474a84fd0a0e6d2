"""Give kwok's simulated pods a real filesystem view for ``kubectl exec``/``cp``.

kwok runs an exec request as a plain local process.  We start kwok with a
directory of shims first on its PATH: every command name points at one small
script which, when kwok passes it a pod's argument file (``LOCO_POD_ARGS``,
set by the agent through kwok's Exec resource), re-runs the command under
bubblewrap with the pod's volumes mounted at their mountPaths over a read-only
view of the host's /usr and /etc.  ``kubectl cp file pod:/images/x`` therefore
lands in the PersistentVolume's directory on this machine, as on a real node.

Commands given by absolute path (``/bin/sh``) bypass the PATH lookup and run
unsandboxed; use bare names.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from loco_lan.fsutil import atomic_write

REAL_PATH_ENV = "LOCO_REAL_PATH"
POD_ARGS_ENV = "LOCO_POD_ARGS"
SHIM_NAME = "loco-pod-exec"
SHIM = f"""#!/bin/sh
# {SHIM_NAME}: run a command kwok execs for a simulated pod inside that pod's view.
name=${{0##*/}}
PATH=${REAL_PATH_ENV}
export PATH
unset {REAL_PATH_ENV}
[ -n "${{{POD_ARGS_ENV}:-}}" ] || exec "$name" "$@"
args=${POD_ARGS_ENV}
unset {POD_ARGS_ENV}
exec bwrap --args 3 -- "$name" "$@" 3<"$args"
"""
HOST_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


def install_shims(directory: Path) -> Path:
    """Create the shim and one symlink to it per command name on the current PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / SHIM_NAME
    if not shim.exists() or shim.read_text() != SHIM:
        atomic_write(shim, SHIM, mode=0o755)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not os.path.isdir(entry) or Path(entry) == directory:
            continue
        for name in os.listdir(entry):
            link = directory / name
            if name != SHIM_NAME and not link.is_symlink() and os.access(os.path.join(entry, name), os.X_OK):
                link.symlink_to(SHIM_NAME)
    return directory


def bwrap_args(mounts: list[Mount], hostname: str, root: Path = Path("/")) -> list[str]:
    """The bubblewrap arguments for a pod: host /usr and /etc read-only, fresh /tmp, its volumes."""
    args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname,
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for name in HOST_DIRS:
        path = root / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", f"/{name}", f"/{name}"]
    for mount in mounts:
        args += ["--ro-bind" if mount.read_only else "--bind", mount.source, mount.target]
    return args + ["--chdir", "/"]


def write_args(path: Path, args: list[str]) -> None:
    """bwrap reads ``--args FD`` as NUL-separated arguments."""
    atomic_write(path, b"".join(arg.encode() + b"\0" for arg in args))
