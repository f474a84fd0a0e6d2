"""The guest channel: commands run inside a guest over its COM1, which the emulator serves as a
TCP server on the pod's loopback (``LOCO_GUEST_CHANNEL``, reached through a port-forward).

A guest that serves it (the test guest, :mod:`loco_lan.testguest`) reads one line
``LOCO-RUN <nonce> <base64 script>``, runs the script with ``sh`` and answers with its output
as base64 between ``LOCO-OUT <nonce>`` and ``LOCO-END <nonce> <status>``. Anything else on the
line (a boot message, the answer to a command whose client gave up) is skipped by its nonce.
A guest that serves nothing (Windows 98) never answers: the call times out.
"""

import base64
import secrets
import socket
import time

from loco_lan.errors import LocoError

READY_EVERY = 1.0  # seconds between no-op tries while the guest is still booting


class GuestChannel:
    """``GuestChannel(host, port).run(script, timeout)`` -> (status, output)."""

    def __init__(self, host: str, port: int, name: str = ""):
        self.host, self.port, self.name = host, port, name or f"{host}:{port}"

    def run(self, script: str, timeout: float = 30.0) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                lines = _Lines(sock)
                self._ready(sock, lines, deadline)
                return self._exchange(sock, lines, script, deadline)
        except TimeoutError:
            raise LocoError(f"the guest channel of {self.name} gave no answer within {timeout:g}s "
                            "(the guest is still booting, or serves no channel)") from None
        except OSError as exc:
            raise LocoError(f"the guest channel of {self.name} ({self.host}:{self.port}): "
                            f"{exc.strerror or exc}") from None

    def _ready(self, sock: socket.socket, lines: "_Lines", deadline: float) -> None:
        """Send a no-op until the guest answers: bytes sent while it boots are lost."""
        while True:
            try:
                self._exchange(sock, lines, "true", min(deadline, time.monotonic() + READY_EVERY))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    @staticmethod
    def _exchange(sock: socket.socket, lines: "_Lines", script: str, deadline: float) -> tuple[int, bytes]:
        nonce = secrets.token_hex(6)
        sock.sendall(f"LOCO-RUN {nonce} {base64.b64encode(script.encode()).decode()}\n".encode())
        output, inside = [], False
        while True:
            words = lines.next(deadline).split()
            if words[:2] == ["LOCO-OUT", nonce]:
                inside, output = True, []
            elif words[:2] == ["LOCO-END", nonce] and inside:
                status = int(words[2]) if len(words) > 2 and words[2].isdigit() else 255
                return status, base64.b64decode("".join(output))
            elif inside and words:
                output.append(words[0])


class _Lines:
    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""

    def next(self, deadline: float) -> str:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise OSError("the emulator closed the guest channel")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode("latin-1")
