"""A tiny QEMU Machine Protocol client: connect, negotiate, run commands, leave.

One connection per use on purpose: a QMP chardev serves one client at a time,
so holding it open would lock out everyone else (and a dead QEMU is noticed on
the next call instead of leaving a stale socket behind).
"""

import asyncio
import contextlib
import itertools
import json
from typing import Any

from loco_lan.errors import LocoError

_ids = itertools.count(1)


class QmpError(LocoError):
    """QEMU refused a command or the monitor could not be reached."""


class Qmp:
    """An open QMP session; use ``async with Qmp.connect(path) as qmp``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float):
        self._reader = reader
        self._writer = writer
        self._timeout = timeout

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, path: str, timeout: float = 5.0):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
        except (OSError, TimeoutError) as exc:
            raise QmpError(f"cannot reach QMP socket {path}: {exc or 'timed out'}") from exc
        qmp = cls(reader, writer, timeout)
        try:
            greeting = await qmp._read()
            if "QMP" not in greeting:
                raise QmpError(f"{path} is not a QMP monitor (greeting {greeting!r:.80})")
            await qmp.execute("qmp_capabilities")
            yield qmp
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def execute(self, command: str, arguments: dict | None = None) -> Any:
        """Run ``command`` and return its ``return`` value; events in between are skipped."""
        request_id = next(_ids)
        request: dict[str, Any] = {"execute": command, "id": request_id}
        if arguments:
            request["arguments"] = arguments
        self._writer.write(json.dumps(request).encode() + b"\n")
        await self._writer.drain()
        while True:
            reply = await self._read()
            if reply.get("id") != request_id:
                continue  # an asynchronous event such as STOP/RESUME
            if "error" in reply:
                error = reply["error"]
                raise QmpError(f"QMP {command} failed: {error.get('class')}: {error.get('desc')}")
            return reply.get("return")

    async def _read(self) -> dict:
        try:
            line = await asyncio.wait_for(self._reader.readline(), self._timeout)
        except (OSError, TimeoutError) as exc:
            raise QmpError(f"QMP connection failed: {exc or 'timed out'}") from exc
        if not line:
            raise QmpError("QMP connection closed by QEMU")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QmpError(f"QMP sent invalid JSON: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise QmpError(f"QMP sent a non-object: {line[:80]!r}")
        return message


async def run(path: str, command: str, arguments: dict | None = None, timeout: float = 5.0) -> Any:
    """Connect to the monitor at ``path``, run one command, and return its result."""
    async with Qmp.connect(path, timeout) as qmp:
        return await qmp.execute(command, arguments)
