"""The socket LAN's hub on loopback: synthetic peers speaking QEMU's stream framing,
then real QEMUs (TCG, 16 MiB) all joined to one hub, which one QEMU's listen mode cannot do."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from loopthread import LoopThread

from loco_lan import demoguest, qmp
from loco_lan.emulator.config import from_env
from loco_lan.emulator.lanhub import LanHub, LanUplink, encode_frame
from loco_lan.emulator.qemu import build_command

BROADCAST = b"\xff" * 6
WAIT = 10.0


def mac(n: int) -> bytes:
    return bytes.fromhex(f"5254004c4f{n:02x}")


def frame(destination: bytes, source: bytes, payload: bytes) -> bytes:
    return destination + source + b"\x88\xb5" + payload  # EtherType for local experiments


class HubThread(LoopThread):
    """A LanHub on its own event loop thread, so synchronous code (and QEMU) can reach it."""

    timeout = WAIT

    def __init__(self, port: int = 0, **options):
        super().__init__()
        self.hub = LanHub(**options)
        self.call(self.hub.start("127.0.0.1", port))
        self.port = self.hub.port

    def status(self) -> dict:
        return self.do(self.hub.status)

    def wait_peers(self, count: int) -> dict:
        deadline = time.monotonic() + WAIT * 3
        while (status := self.status())["peers"] != count:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        return status

    def stop(self):
        super().stop(self.hub.stop())


@pytest.fixture
def lan_hub():
    """Factory: ``lan_hub(send_buffer=...)`` starts a hub on loopback; all are stopped at teardown."""
    hubs: list[HubThread] = []

    def start(port: int = 0, **options) -> HubThread:
        hubs.append(HubThread(port, **options))
        return hubs[-1]

    yield start
    for hub in hubs:
        hub.stop()


class Peer:
    """A synthetic QEMU: one MAC address, frames in QEMU's stream framing."""

    def __init__(self, address: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.mac = address
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, address: bytes, receive_buffer: int | None = None) -> "Peer":
        sock = socket.socket()
        if receive_buffer:  # set before connecting, so the kernel does not grow it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(address, *await asyncio.open_connection(sock=sock))

    async def send(self, destination: bytes, payload: bytes) -> None:
        self.writer.write(encode_frame(frame(destination, self.mac, payload)))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> bytes:
        """The next frame's payload."""
        async with asyncio.timeout(WAIT):
            (length,) = struct.unpack(">I", await self.reader.readexactly(4))
            return (await self.reader.readexactly(length))[14:]

    async def closed_by_hub(self) -> bool:
        async with asyncio.timeout(WAIT):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def peers(hub: HubThread, count: int, first: int = 1) -> list[Peer]:
    joined = [await Peer.connect(hub.port, mac(n)) for n in range(first, first + count)]
    await asyncio.to_thread(hub.wait_peers, count + first - 1)
    return joined


def test_broadcast_reaches_every_other_peer(lan_hub):
    hub = lan_hub()

    async def scenario():
        a, b, c, d = await peers(hub, 4)
        await a.send(BROADCAST, b"hello everyone")
        assert [await peer.receive() for peer in (b, c, d)] == [b"hello everyone"] * 3
        await b.send(BROADCAST, b"from b")
        assert [await peer.receive() for peer in (a, c, d)] == [b"from b"] * 3
        # a heard nothing of its own: its next frame is the one c sends after
        await c.send(BROADCAST, b"from c")
        assert await a.receive() == b"from c"

    asyncio.run(scenario())


def test_unicast_after_learning_reaches_only_its_target(lan_hub):
    hub = lan_hub()

    async def scenario():
        a, b, c = await peers(hub, 3)
        await b.send(BROADCAST, b"b is here")  # the hub learns b's address
        for peer in (a, c):
            assert await peer.receive() == b"b is here"
        await a.send(b.mac, b"for b only")
        await a.send(BROADCAST, b"marker")  # frames keep their order: c's next is the marker
        assert await b.receive() == b"for b only"
        assert await c.receive() == b"marker"
        assert await b.receive() == b"marker"
        assert hub.status()["addresses"] == 2  # a and b

    asyncio.run(scenario())


def test_peer_leaving_and_coming_back(lan_hub):
    hub = lan_hub()

    async def scenario():
        a, b, c = await peers(hub, 3)
        await c.send(BROADCAST, b"c here")
        await a.receive(), await b.receive()
        await c.close()
        await asyncio.to_thread(hub.wait_peers, 2)
        await a.send(c.mac, b"where is c?")  # c's address went with it: flooded
        assert await b.receive() == b"where is c?"

        back = await Peer.connect(hub.port, c.mac)
        await asyncio.to_thread(hub.wait_peers, 3)
        await back.send(BROADCAST, b"c is back")
        assert [await a.receive(), await b.receive()] == [b"c is back"] * 2
        await a.send(c.mac, b"welcome back")
        await a.send(BROADCAST, b"marker")
        assert await back.receive() == b"welcome back"
        assert await b.receive() == b"marker"

    asyncio.run(scenario())


@pytest.mark.parametrize("length", [0, 65537, 0x7FFFFFFF])
def test_malformed_length_closes_only_that_peer(lan_hub, length):
    hub = lan_hub()

    async def scenario():
        a, b, bad = await peers(hub, 3)
        await bad.send_raw(struct.pack(">I", length) + b"garbage")
        assert await bad.closed_by_hub()
        await asyncio.to_thread(hub.wait_peers, 2)
        await a.send(BROADCAST, b"still here")
        assert await b.receive() == b"still here"

    asyncio.run(scenario())


def test_frames_split_across_reads_are_reassembled(lan_hub):
    hub = lan_hub()

    async def scenario():
        a, b = await peers(hub, 2)
        data = encode_frame(frame(BROADCAST, a.mac, b"x" * 1400)) + encode_frame(frame(BROADCAST, a.mac, b"y"))
        for start in range(0, len(data), 333):
            await a.send_raw(data[start : start + 333])
            await asyncio.sleep(0.01)
        assert [await b.receive(), await b.receive()] == [b"x" * 1400, b"y"]

    asyncio.run(scenario())


def test_a_peer_that_stops_reading_does_not_stall_the_others(lan_hub):
    hub = lan_hub(send_buffer=16 * 1024)

    async def scenario():
        sender, fast = await peers(hub, 2)
        slow = await Peer.connect(hub.port, mac(3), receive_buffer=4096)  # and it never reads
        await asyncio.to_thread(hub.wait_peers, 3)
        received = []

        async def read_all():
            while (payload := await fast.receive()) != b"end":
                received.append(int.from_bytes(payload[:4], "big"))

        reader = asyncio.create_task(read_all())
        sent = 0
        while (await asyncio.to_thread(hub.status))["dropped"] == 0:
            assert sent < 50_000, "the hub never dropped a frame for the stalled peer"
            for _ in range(200):
                await sender.send(BROADCAST, sent.to_bytes(4, "big") + bytes(1400))
                sent += 1
        await sender.send(BROADCAST, b"end")
        await reader
        assert received == list(range(sent))  # every frame, in order, while the slow peer lost some
        await slow.close()

    asyncio.run(scenario())


def test_uplink_keeps_its_guest_connected_while_the_hub_is_away(lan_hub, free_port):
    port = free_port()
    first = lan_hub(port)

    async def scenario():
        uplink = LanUplink("127.0.0.1", port, retry=0.1)
        guest = await Peer.connect(await uplink.start(), mac(1))
        other = await Peer.connect(port, mac(2))
        await asyncio.to_thread(first.wait_peers, 2)
        await guest.send(BROADCAST, b"before")
        assert await other.receive() == b"before"

        await asyncio.to_thread(first.stop)
        while uplink.status()["connected"]:
            await asyncio.sleep(0.05)
        await guest.send(BROADCAST, b"into the void")  # a pulled cable: lost, and counted
        while uplink.status()["dropped"] == 0:
            await asyncio.sleep(0.05)

        second = await asyncio.to_thread(lan_hub, port)
        other = await Peer.connect(port, mac(2))
        await asyncio.to_thread(second.wait_peers, 2)
        await other.send(mac(1), b"welcome back")  # unknown yet: flooded to the uplink
        assert await guest.receive() == b"welcome back"  # the guest's own connection never dropped
        assert uplink.status() | {"hub": None} == {"role": "peer", "hub": None, "connected": True,
                                                   "reconnects": 1, "dropped": 1}
        await guest.close()
        await other.close()
        await uplink.stop()

    asyncio.run(scenario())


# --- real QEMU ---------------------------------------------------------------------------------


def read_pcap(path: Path) -> list[bytes]:
    """The frames in a pcap file QEMU's filter-dump writes (little-endian, microseconds)."""
    data = path.read_bytes() if path.exists() else b""
    frames, offset = [], 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from("<I", data, offset + 8)[0]
        frames.append(data[offset + 16 : offset + 16 + captured])
        offset += 16 + captured
    return frames


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT * 3
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


class Qemu:
    def __init__(self, tmp: Path, ordinal: int, hub_port: int, disk: Path, free_port):
        display = free_port()
        while display <= 5900:
            display = free_port()
        self.qmp = tmp / f"qmp-{ordinal}.sock"
        self.pcap = tmp / f"lan-{ordinal}.pcap"
        self.mac = mac(ordinal)
        config = from_env(
            {
                "INSTANCE_ID": f"instance-{ordinal}",
                "SOCKET_MASTER_HOST": "127.0.0.1",
                "SOCKET_PORT": str(hub_port),
                "QEMU_MEMORY": "16",
                "LOCO_AUDIO": "false",
                "LOCO_VNC_LISTEN": "127.0.0.1",
                "LOCO_VNC_DISPLAY": str(display - 5900),
                "LOCO_QMP_SOCKET": str(self.qmp),
            }
        )
        command = build_command(config, disk, "tcg")
        command += ["-object", f"filter-dump,id=dump0,netdev=lan0,file={self.pcap}"]  # what the NIC saw
        self.log = tmp / f"qemu-{ordinal}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def received_from(self, source: bytes) -> list[bytes]:
        return [frame for frame in read_pcap(self.pcap) if frame[6:12] == source]

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def qemus(tmp_path, free_port):
    """Factory: ``qemus(hub_port, 3)`` boots QEMUs with the demo disk, joined to the hub; killed at teardown."""
    if not shutil.which("qemu-system-i386"):
        pytest.skip("qemu-system-i386 not installed")
    started: list[Qemu] = []
    base = tmp_path / "demo.qcow2"
    demoguest.ensure(base)

    def start(hub_port: int, count: int) -> list[Qemu]:
        for ordinal in range(1, count + 1):
            disk = tmp_path / f"disk-{ordinal}.qcow2"
            shutil.copyfile(base, disk)
            started.append(Qemu(tmp_path, ordinal, hub_port, disk, free_port))
        return started

    yield start
    for instance in started:
        instance.kill()


@pytest.mark.qemu
def test_three_real_qemus_share_one_hub(lan_hub, qemus):
    hub = lan_hub()
    one, two, three = qemus(hub.port, 3)
    hub.wait_peers(3)
    for instance in (one, two, three):
        assert instance.process.poll() is None, instance.log.read_text()

    # QEMU itself sends: announce-self makes QEMU one's NIC broadcast a RARP from its MAC.
    announce = {"initial": 50, "max": 550, "rounds": 1, "step": 100}
    asyncio.run(qmp.run(str(one.qmp), "announce-self", announce))
    for instance in (two, three):
        (rarp,) = wait_for(lambda i=instance: i.received_from(one.mac), "the RARP to cross the hub")
        assert rarp[:6] == BROADCAST and rarp[12:14] == b"\x80\x35"
    assert hub.status()["addresses"] == 1  # the hub learned where QEMU one lives

    # A unicast for QEMU one reaches its NIC only; the broadcast after it reaches all three.
    async def inject():
        peer = await Peer.connect(hub.port, mac(0x20))
        await peer.send(one.mac, b"for qemu one")
        await peer.send(BROADCAST, b"marker")
        await peer.close()

    asyncio.run(inject())

    def payloads(instance: Qemu) -> list[bytes]:
        return [frame[14:].rstrip(b"\0") for frame in instance.received_from(mac(0x20))]

    for instance in (one, two, three):  # frames arrive in order: once the marker is in, so is the unicast
        wait_for(lambda i=instance: b"marker" in payloads(i), "the marker")
    assert payloads(one) == [b"for qemu one", b"marker"]
    assert payloads(two) == payloads(three) == [b"marker"]


@pytest.mark.qemu
@pytest.mark.slow
def test_a_peer_comes_back_to_a_restarted_hub(lan_hub, emulator, boot_disks, free_port):
    """Instance 0 restarting takes the hub away; the peer's uplink reconnects to the new one and
    the guest, never restarted, is on the LAN again (QEMU 7.2 alone would stay off it)."""
    first = lan_hub(free_port())
    peer = emulator(boot_disks["desktop"], INSTANCE_ID="instance-1", NETWORK_MODE="socket",
                    SOCKET_MASTER_HOST="127.0.0.1", SOCKET_PORT=str(first.port), LOCO_LAN_LISTEN="127.0.0.1")
    peer.wait_healthy()
    first.wait_peers(1)
    qemu = subprocess.check_output(["pgrep", "-P", str(peer.process.pid)])  # the entrypoint's QEMU

    first.stop()
    wait_for(lambda: not peer.health()[1]["lan"]["connected"], "the peer to notice the hub is gone")
    second = lan_hub(first.port)
    second.wait_peers(1)
    lan = wait_for(lambda: (body := peer.health()[1]["lan"])["connected"] and body, "the peer to reconnect")
    assert lan["reconnects"] == 1
    assert subprocess.check_output(["pgrep", "-P", str(peer.process.pid)]) == qemu  # never restarted
    assert "is back: this guest is on the LAN again" in peer.log.read_text()

    async def guest_frame_reaches_the_new_hub():
        listener = await Peer.connect(second.port, mac(0x20))
        await asyncio.to_thread(second.wait_peers, 2)
        announce = {"initial": 50, "max": 550, "rounds": 1, "step": 100}
        await qmp.run(str(peer.qmp), "announce-self", announce)  # QEMU's NIC broadcasts a RARP
        async with asyncio.timeout(WAIT):
            while True:
                (length,) = struct.unpack(">I", await listener.reader.readexactly(4))
                received = await listener.reader.readexactly(length)
                if received[6:12] == bytes.fromhex("5254004c4f01"):  # instance-1's MAC
                    break
        await listener.close()
        return received

    rarp = asyncio.run(guest_frame_reaches_the_new_hub())
    assert rarp[:6] == BROADCAST and rarp[12:14] == b"\x80\x35"
