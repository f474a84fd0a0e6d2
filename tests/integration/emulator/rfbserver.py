"""A minimal RFB server for tests: serves a picture (a numpy RGB array) to real
clients over loopback, with Raw or ZRLE rectangles, CopyRect moves and
DesktopSize changes, security None or VNC authentication, protocol 3.3 or 3.8.

It records what clients send (pointer and key events) and which ZRLE
subencodings it used, so tests can see each path was exercised.
"""

import asyncio
import contextlib
import os
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from PIL import Image

RAW, COPY_RECT, ZRLE, DESKTOP_SIZE = 0, 1, 16, -223


def _des_key(password: str) -> bytes:
    key = password.encode()[:8].ljust(8, b"\0")
    return bytes(sum(((b >> i) & 1) << (7 - i) for i in range(8)) for b in key)


class ScreenServer:
    def __init__(
        self, image: np.ndarray, *, password: str | None = None, version: int = 8, use_zrle: bool = True
    ):
        self.image = image.copy()
        self.password = password
        self.version = version
        self.use_zrle = use_zrle
        self.events: list[tuple] = []
        self.subencodings: Counter = Counter()
        self.encodings_sent: Counter = Counter()
        self._clients: list[_Session] = []
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def show(self, image: np.ndarray) -> None:
        """Display ``image``; a new size reaches clients as a DesktopSize change."""
        resized = image.shape != self.image.shape
        self.image = image.copy()
        for session in self._clients:
            session.pending_resize |= resized
            session.dirty = True
            session.wake.set()

    def move(self, src: tuple[int, int, int, int], dest: tuple[int, int]) -> None:
        """Copy a region of the picture elsewhere, sent as CopyRect to clients that take it."""
        x, y, width, height = src
        dx, dy = dest
        self.image[dy : dy + height, dx : dx + width] = self.image[y : y + height, x : x + width].copy()
        for session in self._clients:
            session.copies.append((x, y, width, height, dx, dy))
            session.wake.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._tasks.add(asyncio.current_task())
        try:
            if await self._handshake(session, reader):
                self._clients.append(session)
                await self._loop(session, reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tasks.discard(asyncio.current_task())
            if session in self._clients:
                self._clients.remove(session)
            writer.close()

    async def _handshake(self, session: "_Session", reader: asyncio.StreamReader) -> bool:
        writer = session.writer
        writer.write(b"RFB 003.%03d\n" % self.version)
        await reader.readexactly(12)
        kind = 2 if self.password is not None else 1
        if self.version == 3:
            writer.write(struct.pack(">I", kind))
        else:
            writer.write(bytes([1, kind]))
            if (await reader.readexactly(1))[0] != kind:
                return False
        if kind == 2:
            challenge = os.urandom(16)
            writer.write(challenge)
            answer = await reader.readexactly(16)
            encryptor = Cipher(TripleDES(_des_key(self.password) * 3), modes.ECB()).encryptor()
            if answer != encryptor.update(challenge) + encryptor.finalize():
                reason = b"password mismatch"
                writer.write(
                    struct.pack(">I", 1)
                    + (struct.pack(">I", len(reason)) + reason if self.version == 8 else b"")
                )
                await writer.drain()
                return False
        if kind == 2 or self.version == 8:
            writer.write(struct.pack(">I", 0))
        await reader.readexactly(1)  # ClientInit
        height, width = self.image.shape[:2]
        name = b"test screen"
        writer.write(struct.pack(">HH", width, height) + bytes(16) + struct.pack(">I", len(name)) + name)
        await writer.drain()
        return True

    async def _loop(self, session: "_Session", reader: asyncio.StreamReader) -> None:
        while True:
            kind = (await reader.readexactly(1))[0]
            if kind == 0:  # SetPixelFormat: this server speaks only the client's 32-bit BGRX
                fmt = (await reader.readexactly(19))[3:]
                assert struct.unpack(">BBBBHHHBBB", fmt[:13]) == (32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            elif kind == 2:
                (count,) = struct.unpack(">xH", await reader.readexactly(3))
                session.encodings = list(struct.unpack(f">{count}i", await reader.readexactly(4 * count)))
            elif kind == 3:
                incremental, *_ = struct.unpack(">BHHHH", await reader.readexactly(9))
                await self._answer(session, bool(incremental))
            elif kind == 4:
                down, key = struct.unpack(">BxxI", await reader.readexactly(7))
                self.events.append(("key", key, bool(down)))
            elif kind == 5:
                self.events.append(("pointer", *struct.unpack(">BHH", await reader.readexactly(5))))
            elif kind == 6:
                (length,) = struct.unpack(">xxxI", await reader.readexactly(7))
                await reader.readexactly(length)
            else:
                raise ConnectionError(f"unknown client message {kind}")

    async def _answer(self, session: "_Session", incremental: bool) -> None:
        """Answer a FramebufferUpdateRequest; an incremental one waits for a change."""
        while incremental and not (session.dirty or session.copies or session.pending_resize):
            session.wake.clear()
            await session.wake.wait()
        height, width = self.image.shape[:2]
        if session.pending_resize and DESKTOP_SIZE in session.encodings:
            session.pending_resize = False
            session.dirty = True
            self._send(session, [struct.pack(">HHHHi", 0, 0, width, height, DESKTOP_SIZE)], DESKTOP_SIZE)
            return
        rects = []
        if incremental and session.copies and not session.dirty and COPY_RECT in session.encodings:
            for x, y, w, h, dx, dy in session.copies:
                rects.append(struct.pack(">HHHHiHH", dx, dy, w, h, COPY_RECT, x, y))
            session.copies.clear()
            self._send(session, rects, COPY_RECT)
            return
        session.copies.clear()
        session.dirty = False
        if self.use_zrle and ZRLE in session.encodings:
            data = session.deflate.compress(zrle_encode(self.image, self.subencodings))
            data += session.deflate.flush(zlib.Z_SYNC_FLUSH)
            rects.append(struct.pack(">HHHHiI", 0, 0, width, height, ZRLE, len(data)) + data)
            self._send(session, rects, ZRLE)
        else:
            bgrx = np.zeros((height, width, 4), np.uint8)
            bgrx[..., :3] = self.image[..., ::-1]
            rects.append(struct.pack(">HHHHi", 0, 0, width, height, RAW) + bgrx.tobytes())
            self._send(session, rects, RAW)

    def _send(self, session: "_Session", rects: list[bytes], encoding: int) -> None:
        self.encodings_sent[encoding] += 1
        session.writer.write(struct.pack(">BxH", 0, len(rects)) + b"".join(rects))


class _Session:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.encodings: list[int] = []
        self.dirty = True
        self.pending_resize = False
        self.copies: list[tuple] = []
        self.wake = asyncio.Event()
        self.deflate = zlib.compressobj()


def zrle_encode(image: np.ndarray, used: Counter) -> bytes:
    """ZRLE tiles (before deflate) for an RGB image, choosing per 64x64 tile among
    solid, packed palette, palette RLE, plain RLE and raw. CPIXELs are B, G, R."""
    height, width = image.shape[:2]
    out = bytearray()
    for ty in range(0, height, 64):
        for tx in range(0, width, 64):
            tile = image[ty : ty + 64, tx : tx + 64]
            th, tw = tile.shape[:2]
            flat = np.ascontiguousarray(tile.reshape(-1, 3)[:, ::-1])  # to B, G, R
            keys = flat.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], np.int32)
            unique_keys, inverse = np.unique(keys, return_inverse=True)
            colours = np.stack([unique_keys >> 16, (unique_keys >> 8) & 255, unique_keys & 255], axis=1)
            colours = colours.astype(np.uint8)
            starts = np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))
            lengths = np.diff(np.concatenate((starts, [len(keys)])))
            if len(colours) == 1:
                out += b"\x01" + colours[0].tobytes()
                used["solid"] += 1
            elif len(colours) <= 16 and len(starts) * 2 > tw * th // 4:
                bits = 1 if len(colours) == 2 else 2 if len(colours) <= 4 else 4
                per_byte = 8 // bits  # indices packed MSB first, each row padded to a byte
                rows = np.pad(inverse.reshape(th, tw), ((0, 0), (0, (-tw) % per_byte)))
                shifts = 8 - bits * (np.arange(per_byte) + 1)
                out += bytes([len(colours)]) + colours.tobytes()
                out += (rows.reshape(th, -1, per_byte) << shifts).sum(axis=2).astype(np.uint8).tobytes()
                used["packed-palette"] += 1
            elif len(colours) <= 127 and len(starts) < tw * th // 2:
                heads = inverse[starts].astype(np.uint8) | np.where(lengths > 1, 128, 0).astype(np.uint8)
                out += bytes([128 + len(colours)]) + colours.tobytes()
                out += _runs(heads[:, None], lengths, singles_bare=True)
                used["palette-rle"] += 1
            elif len(starts) < tw * th // 3:
                out += b"\x80" + _runs(flat[starts], lengths, singles_bare=False)
                used["plain-rle"] += 1
            else:
                out += b"\x00" + flat.tobytes()
                used["raw"] += 1
    return bytes(out)


def _runs(heads: np.ndarray, lengths: np.ndarray, singles_bare: bool) -> bytes:
    """Each run's head bytes, then its length as (length - 1) in 255-sized bytes plus
    the rest; with ``singles_bare`` a run of one has no length bytes (palette RLE)."""
    tails = (lengths - 1) // 255 + 1
    if singles_bare:
        tails[lengths == 1] = 0
    width = heads.shape[1]
    sizes = width + tails
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    buffer = np.full(int(sizes.sum()), 255, np.uint8)
    for i in range(width):
        buffer[offsets + i] = heads[:, i]
    coded = tails > 0
    buffer[offsets[coded] + width + tails[coded] - 1] = (lengths[coded] - 1) % 255
    return buffer.tobytes()


FIXTURES = Path(__file__).resolve().parents[2] / "data" / "win98-screens"


def fixture_screen(name: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / name).convert("RGB"))
