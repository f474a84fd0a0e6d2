"""Progress of long byte transfers: a redrawn bar on a terminal, plain periodic lines otherwise
(logs and CI keep readable lines instead of carriage-return noise)."""

import sys
import time
from typing import TextIO

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(count: float) -> str:
    for unit in _UNITS:
        if abs(count) < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts bytes of one transfer and reports them to ``stream`` (default stderr).

    ``total`` may be None when unknown (no percentage, no ETA).  Use as a context
    manager or call ``close()`` to print the final line.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
        clock=time.monotonic,
    ):
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval if interval is not None else (0.2 if self._tty else 5.0)
        self._clock = clock
        self._start = self._last = clock()
        self._closed = False

    def update(self, count: int) -> None:
        self.done += count
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._emit(now)

    def reset(self, done: int = 0) -> None:
        """Go back to ``done`` (a transfer restarted or resumed from there)."""
        self.done = done

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._emit(self._clock(), final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        amount = human_bytes(self.done)
        if self.total:
            amount += f" / {human_bytes(self.total)}"
        parts = [amount, f"{human_bytes(rate)}/s"]
        if final:
            parts.append(f"in {human_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {human_duration(max(self.total - self.done, 0) / rate)}")
        head = self.label
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            bar = f"[{'#' * int(24 * fraction):.<24}] " if self._tty else ""
            head += f" {bar}{fraction:.0%}"
        return f"{head}  {'  '.join(parts)}"

    def _emit(self, now: float, final: bool = False) -> None:
        text = self.line(now, final)
        if self._tty:
            self._stream.write(f"\r\033[K{text}" + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
