"""A registry with a flaky network, for tests and benchmarks of resumed transfers."""

import contextlib
import socket
import threading

from loco_lan.netutil import LOOPBACK as HOST


class CuttingProxy:
    """A loopback TCP proxy that drops its connections once ``cut_after`` bytes have flowed
    back to clients (``upload=True``: from clients), counted over all connections, then
    disarms: a registry with a flaky network, to exercise resumed transfers.  With
    ``stall=True`` the cut connection is held open, silent, until the proxy closes: a registry
    gone quiet mid-transfer, for a client to be killed while it waits.  With ``down=True`` the
    registry goes down at the cut: every later connection is refused.
    ``downstream``/``upstream`` count every byte relayed each way."""

    def __init__(self, target: str, cut_after: int | None = None, *, upload: bool = False, stall: bool = False,
                 down: bool = False):
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self.cut_after = cut_after
        self.upload = upload
        self.stall = stall
        self.down = down
        self._closing = threading.Event()
        self.downstream = self.upstream = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, back: bool) -> None:
        counter = "downstream" if back else "upstream"
        try:
            while data := source.recv(1 << 20):
                with self._lock:
                    done = getattr(self, counter)
                    armed = self.cut_after is not None and back != self.upload
                    cut = armed and done + len(data) >= self.cut_after
                    if cut:
                        data = data[: self.cut_after - done]
                        self.cut_after = None
                        self.cuts += 1
                    setattr(self, counter, done + len(data))
                sink.sendall(data)
                if cut:
                    if self.down:
                        self._stop_listening()
                    if self.stall:
                        self._closing.wait()
                    break
        except OSError:
            pass
        for end in (source, sink):  # wakes the opposite pump, which closes its own source
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._sockets.discard(source)
        source.close()

    def _stop_listening(self) -> None:
        """Refuse connections from now on (shutdown wakes the accepting thread; close alone may not)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def close(self) -> None:
        self._closing.set()
        self._stop_listening()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
