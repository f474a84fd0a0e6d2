"""The socket LAN's hub: a small learning Ethernet switch every emulator's QEMU connects to.

QEMU's ``-netdev socket,listen=`` takes a single peer, so a LAN of three or more guests
cannot hang off one QEMU. Instance 0 runs this hub instead and every QEMU, its own
included, connects with ``-netdev socket,connect=``. The wire format is QEMU's stream
framing: each Ethernet frame goes as a 4-byte big-endian length, then the frame.

The hub learns behind which connection each source MAC address lives, sends unicast
frames only there, and floods broadcast, multicast and unknown destinations to every
other connection. Addresses are forgotten after ``AGEING`` seconds or when their
connection closes. Each connection's send buffer is bounded: a peer that stops reading
loses frames, the others carry on.
"""

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Hashable, Iterable

from loco_lan.errors import LocoError

log = logging.getLogger(__name__)

LENGTH = struct.Struct(">I")
MAX_FRAME = 65536
ETHERNET_HEADER = 14  # destination MAC, source MAC, EtherType
AGEING = 300.0  # seconds an address stays learned, as in Linux bridges
MAX_ADDRESSES = 4096  # a peer spraying source addresses cannot grow the table past this
SEND_BUFFER = 256 * 1024  # bytes queued for one peer (about 170 full-size frames) before its frames drop


class FrameError(ValueError):
    """The stream carries a length no Ethernet frame has: the connection is out of step."""


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take the complete frames off the front of ``buffer``; a partial one stays for the next read."""
    frames = []
    offset = 0
    while len(buffer) - offset >= LENGTH.size:
        (length,) = LENGTH.unpack_from(buffer, offset)
        if not 0 < length <= MAX_FRAME:
            raise FrameError(f"frame length {length} outside 1..{MAX_FRAME}")
        end = offset + LENGTH.size + length
        if end > len(buffer):
            break
        frames.append(bytes(buffer[offset + LENGTH.size : end]))
        offset = end
    del buffer[:offset]
    return frames


def encode_frame(frame: bytes) -> bytes:
    return LENGTH.pack(len(frame)) + frame


def socket_error(exc: OSError) -> str:
    """A short reason for a failed bind or connect (asyncio's own messages repeat the address)."""
    if isinstance(exc, socket.gaierror):
        return exc.strerror
    if exc.errno and exc.errno > 0:
        return os.strerror(exc.errno)
    return str(exc) or "no answer"


class SwitchTable:
    """Which port each MAC address was last seen on, and where a frame goes (pure: time is passed in)."""

    def __init__(self, ageing: float = AGEING, capacity: int = MAX_ADDRESSES):
        self.ageing = ageing
        self.capacity = capacity
        self._seen: dict[bytes, tuple[Hashable, float]] = {}

    def learn(self, mac: bytes, port: Hashable, now: float) -> None:
        if mac not in self._seen and len(self._seen) >= self.capacity:
            self.expire(now)
            if len(self._seen) >= self.capacity:
                return  # full: frames to this address are flooded, which is still correct
        self._seen[mac] = (port, now)

    def lookup(self, mac: bytes, now: float) -> Hashable | None:
        entry = self._seen.get(mac)
        if entry is None or now - entry[1] > self.ageing:
            self._seen.pop(mac, None)
            return None
        return entry[0]

    def forget(self, port: Hashable) -> None:
        """Drop every address learned on ``port`` (its connection closed)."""
        self._seen = {mac: entry for mac, entry in self._seen.items() if entry[0] != port}

    def expire(self, now: float) -> int:
        """Drop aged-out addresses; returns how many are left."""
        self._seen = {mac: entry for mac, entry in self._seen.items() if now - entry[1] <= self.ageing}
        return len(self._seen)

    def route(self, frame: bytes, source: Hashable, ports: Iterable[Hashable], now: float) -> list:
        """The ports ``frame``, arrived on ``source``, goes to; learns its sender on the way."""
        if len(frame) < ETHERNET_HEADER:
            return []  # a runt has no addresses to switch on
        destination, sender = frame[:6], frame[6:12]
        if not sender[0] & 1:  # a group address is never a sender
            self.learn(sender, source, now)
        if not destination[0] & 1:
            port = self.lookup(destination, now)
            if port is not None:
                return [] if port == source else [port]  # never back where it came from
        return [port for port in ports if port != source]


class _Peer(asyncio.Protocol):
    """One QEMU's connection to the hub: a port of the switch."""

    def __init__(self, hub: "LanHub"):
        self.hub = hub
        self.name = "?"
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        address = transport.get_extra_info("peername")
        self.name = f"{address[0]}:{address[1]}" if address else "?"
        self.hub._join(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = split_frames(self.buffer)
        except FrameError as exc:
            log.warning("LAN peer %s sent a %s: closing its connection", self.name, exc)
            self.transport.close()
            return
        self.hub._forward(self, frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub._leave(self)

    def send(self, frame: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() >= self.hub.send_buffer:
            if not self.dropped:
                log.warning("LAN peer %s is not keeping up: dropping frames for it", self.name)
            self.dropped += 1
            self.hub.dropped += 1
            return
        self.transport.write(encode_frame(frame))


class LanHub:
    """``await hub.start(host, port)`` serves the LAN on the running loop until ``await hub.stop()``."""

    def __init__(self, ageing: float = AGEING, send_buffer: int = SEND_BUFFER):
        self.table = SwitchTable(ageing)
        self.send_buffer = send_buffer
        self.peers: dict[_Peer, None] = {}  # insertion-ordered set
        self.address = ""  # host:port once listening
        self.port = 0
        self.dropped = 0  # frames dropped for peers that did not keep up, since start
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _Peer(self), host, port)
        except OSError as exc:
            raise LocoError(
                f"SOCKET_PORT={port}: the LAN hub cannot listen on {host} ({socket_error(exc)})"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self.address = f"{host}:{self.port}"
        log.info("LAN hub listening on %s", self.address)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for peer in list(self.peers):
            peer.transport.abort()
        await self._server.wait_closed()

    def status(self) -> dict:
        return {
            "role": "hub",
            "listen": self.address,
            "peers": len(self.peers),
            "addresses": self.table.expire(time.monotonic()),
            "dropped": self.dropped,
        }

    def _join(self, peer: _Peer) -> None:
        self.peers[peer] = None
        log.info("LAN peer %s joined (%d connected)", peer.name, len(self.peers))

    def _leave(self, peer: _Peer) -> None:
        self.peers.pop(peer, None)
        self.table.forget(peer)
        dropped = f", {peer.dropped} frames dropped for it" if peer.dropped else ""
        log.info("LAN peer %s left (%d connected%s)", peer.name, len(self.peers), dropped)

    def _forward(self, source: _Peer, frames: list[bytes]) -> None:
        now = time.monotonic()
        for frame in frames:
            for target in self.table.route(frame, source, self.peers, now):
                target.send(frame)
