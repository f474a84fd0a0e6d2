"""The socket LAN's hub: a small learning Ethernet switch every emulator's QEMU connects to.

QEMU's ``-netdev socket,listen=`` takes a single peer, so a LAN of three or more guests
cannot hang off one QEMU. Instance 0 runs this hub instead and every QEMU, its own
included, connects with ``-netdev socket,connect=``. The wire format is QEMU's stream
framing: each Ethernet frame goes as a 4-byte big-endian length, then the frame.

The hub learns behind which connection each source MAC address lives, sends unicast
frames only there, and floods broadcast, multicast and unknown destinations to every
other connection. A port of the hub's own, the probe port (:mod:`loco_lan.emulator.lanprobe`),
sees the segment as a machine on it would, for the network checks. Addresses are forgotten
after ``AGEING`` seconds or when their connection closes. Each connection's send buffer is
bounded: a peer that stops reading loses frames, the others carry on.

The other instances' QEMU connects to a ``LanUplink`` in its own entrypoint, which
carries the frames to the hub and reconnects when the hub goes away (instance 0
restarted): QEMU's socket netdev never reconnects by itself, so without it a restarted
instance 0 would leave every other guest off the LAN for good.  The guest sees a
cable pulled for a moment, nothing more.
"""

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Hashable, Iterable

from loco_lan.emulator.lanprobe import SUBNET, ProbePort, mac_text
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

    def addresses(self, port: Hashable, now: float) -> list[bytes]:
        """The addresses learned on ``port`` that have not aged out."""
        return [mac for mac, (where, seen) in self._seen.items() if where == port and now - seen <= self.ageing]

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


class FrameLink(asyncio.Protocol):
    """A TCP connection in QEMU's stream framing: whole frames in go to ``on_frames``, ``send``
    queues one out, dropping it when the other end has stopped reading (``send_buffer``)."""

    def __init__(self, on_join, on_frames, on_leave, send_buffer: int = SEND_BUFFER):
        self.on_join, self.on_frames, self.on_leave = on_join, on_frames, on_leave
        self.send_buffer = send_buffer
        self.name = "?"
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.dropped = 0
        self.frames_in = self.frames_out = 0  # frames from and to the other end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        address = transport.get_extra_info("peername")
        self.name = f"{address[0]}:{address[1]}" if address else "?"
        self.on_join(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = split_frames(self.buffer)
        except FrameError as exc:
            log.warning("LAN peer %s sent a %s: closing its connection", self.name, exc)
            self.transport.close()
            return
        self.frames_in += len(frames)
        self.on_frames(self, frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_leave(self)

    def send(self, frame: bytes) -> bool:
        """Queue ``frame``; False when it was dropped."""
        if self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() >= self.send_buffer:
            if not self.dropped:
                log.warning("LAN peer %s is not keeping up: dropping frames for it", self.name)
            self.dropped += 1
            return False
        self.transport.write(encode_frame(frame))
        self.frames_out += 1
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class LanHub:
    """``await hub.start(host, port)`` serves the LAN on the running loop until ``await hub.stop()``."""

    def __init__(self, ageing: float = AGEING, send_buffer: int = SEND_BUFFER):
        self.table = SwitchTable(ageing)
        self.send_buffer = send_buffer
        self.peers: dict[FrameLink, None] = {}  # insertion-ordered set
        self.address = ""  # host:port once listening
        self.port = 0
        self.dropped = 0  # frames dropped for peers that did not keep up, since start
        self.probe_port = ProbePort(self._forward)  # the hub's own port on the segment
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: FrameLink(self._join, self._forward, self._leave, self.send_buffer), host, port)
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
            peer.close()
        await self._server.wait_closed()

    def status(self) -> dict:
        return {
            "role": "hub",
            "listen": self.address,
            "peers": len(self.peers),
            "addresses": self.table.expire(time.monotonic()),
            "dropped": self.dropped,
            "ports": self.ports(),
        }

    def ports(self) -> list[dict]:
        """Per port: the peer, the MACs learned behind it, frames from and to it, frames dropped for it."""
        now = time.monotonic()
        return [{"port": peer.name, "macs": [mac_text(mac) for mac in self.table.addresses(peer, now)],
                 "frames_in": peer.frames_in, "frames_out": peer.frames_out, "dropped": peer.dropped}
                for peer in [*self.peers, self.probe_port]]

    async def probe(self, subnet: str = SUBNET, wait: float = 1.5) -> dict:
        """What the probe port sees of the segment, with the port table after it."""
        seen = await self.probe_port.probe(subnet, wait)
        return {**seen, "ports": self.ports()}

    def _join(self, peer: FrameLink) -> None:
        self.peers[peer] = None
        log.info("LAN peer %s joined (%d connected)", peer.name, len(self.peers))

    def _leave(self, peer: FrameLink) -> None:
        self.peers.pop(peer, None)
        self.table.forget(peer)
        dropped = f", {peer.dropped} frames dropped for it" if peer.dropped else ""
        log.info("LAN peer %s left (%d connected%s)", peer.name, len(self.peers), dropped)

    def _forward(self, source: FrameLink | ProbePort, frames: list[bytes]) -> None:
        now = time.monotonic()
        ports = [*self.peers, self.probe_port]
        for frame in frames:
            for target in self.table.route(frame, source, ports, now):
                if not target.send(frame):
                    self.dropped += 1


class LanUplink:
    """A peer's way onto the LAN: ``port = await uplink.start()``, QEMU connects to
    127.0.0.1:port, and the uplink keeps a connection to the hub for it, coming back
    every ``retry`` seconds while the hub is away.  Frames are dropped meanwhile."""

    def __init__(self, hub_host: str, hub_port: int, retry: float = 1.0, connect_timeout: float = 3.0):
        self.hub = (hub_host, hub_port)
        self.retry = retry
        self.connect_timeout = connect_timeout
        self.guest: FrameLink | None = None
        self.upstream: FrameLink | None = None
        self.connects = 0  # connections made to the hub, the first included
        self.dropped = 0  # frames that found the other side missing or stalled
        self.port = 0
        self._server: asyncio.Server | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FrameLink(self._guest_joined, self._to_hub, self._guest_left), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._stay_connected(), name="lan-uplink")
        return self.port

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for link in (self.guest, self.upstream):
            if link:
                link.close()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    def status(self) -> dict:
        return {"role": "peer", "hub": "{}:{}".format(*self.hub), "connected": self.upstream is not None,
                "reconnects": max(self.connects - 1, 0), "dropped": self.dropped}

    async def _stay_connected(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._lost.clear()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(
                        lambda: FrameLink(self._hub_joined, self._to_guest, self._hub_left), *self.hub)
            except (OSError, TimeoutError) as exc:
                if self.connects:
                    log.debug("LAN hub %s:%d still away (%s)", *self.hub, socket_error(exc))
                await asyncio.sleep(self.retry)
                continue
            await self._lost.wait()
            await asyncio.sleep(self.retry)

    def _hub_joined(self, link: FrameLink) -> None:
        self.upstream = link
        self.connects += 1
        if self.connects > 1:
            log.info("LAN hub %s:%d is back: this guest is on the LAN again", *self.hub)

    def _hub_left(self, link: FrameLink) -> None:
        self.upstream = None
        if not self._stopping:
            log.warning("lost the LAN hub %s:%d (instance 0 restarting?): reconnecting", *self.hub)
        self._lost.set()

    def _guest_joined(self, link: FrameLink) -> None:
        if self.guest is not None:  # one QEMU per uplink: a second connection replaces the first
            self.guest.close()
        self.guest = link

    def _guest_left(self, link: FrameLink) -> None:
        if self.guest is link:
            self.guest = None

    def _to_hub(self, _link: FrameLink, frames: list[bytes]) -> None:
        self._carry(self.upstream, frames)

    def _to_guest(self, _link: FrameLink, frames: list[bytes]) -> None:
        self._carry(self.guest, frames)

    def _carry(self, target: FrameLink | None, frames: list[bytes]) -> None:
        for frame in frames:
            if target is None or not target.send(frame):
                self.dropped += 1
