"""Processes known by a stored pid (the local cluster's components, the live-access supervisor).

Once such a process exits its pid can be handed to an unrelated one, so a pid is stored with the
process's start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot) and a process is
only taken for ours, and signalled, while the pid still has that start time.  The check is made
on a pidfd, which keeps naming the process it was opened on, and a lone process is signalled
through it: what was checked is what gets the signal.
"""

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` from field 3 (the state) on; OSError if there is no such process."""
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None if there is no such process."""
    try:
        return int(stat_fields(pid)[19])
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a running process (a zombie is not running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        if stat_fields(pid)[0] == "Z":
            return False
    return True


@dataclass(frozen=True)
class Started:
    """A process we started: its pid and start time."""

    pid: int
    start: int | None  # None: recorded by a version that did not store it; the pid alone is trusted

    @classmethod
    def of(cls, pid: int) -> "Started":
        return cls(pid, start_time(pid))

    @classmethod
    def load(cls, value) -> "Started | None":
        """From what ``dump`` stored (or a bare pid, as older state files hold)."""
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, None)
        if isinstance(value, dict) and isinstance(value.get("pid"), int):
            start = value.get("start")
            return cls(value["pid"], start if isinstance(start, int) else None)
        return None

    def dump(self) -> dict:
        return {"pid": self.pid, "start": self.start}

    def _is_ours(self) -> bool:
        return self.start is None or start_time(self.pid) == self.start

    def alive(self) -> bool:
        return pid_alive(self.pid) and self._is_ours()

    def signal(self, signum: int, group: bool = True) -> bool:
        """Send ``signum`` to the process (and its process group, which it leads), only if it is
        still ours; whether it was."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        try:
            if not (self._is_ours() and pid_alive(self.pid)):
                return False
            if group:  # the group it leads: checked through its leader just above
                os.killpg(self.pid, signum)
            else:
                signal.pidfd_send_signal(pidfd, signum)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)
