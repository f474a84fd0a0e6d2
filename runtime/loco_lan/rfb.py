"""The project's one RFB (VNC) client: asyncio, no external VNC binary.

Speaks protocol 3.3, 3.7 and 3.8 with security None or VNC authentication,
asks for 32-bit true colour and decodes Raw, CopyRect and ZRLE rectangles plus
the DesktopSize pseudo-encoding (Windows 98 changes mode while booting) into a
numpy RGB framebuffer. The guest's own colour depth (8, 16 or 32 bits) does not
matter: the server converts to the format asked for.

With QEMU's audio extension (``-vnc ...,audiodev=snd0``; :meth:`RFBClient.start_audio`)
the guest's sound card output comes over the same connection as raw PCM.

A reader task owns the socket: it parses each server message completely, then
applies the whole framebuffer update at once, so callers never see half an
update and a caller's timeout never leaves the stream mid-message::

    async with await RFBClient.connect("127.0.0.1", 5901, password="secret") as vnc:
        frame = await vnc.refresh()            # full frame, HxWx3 uint8
        async for update in vnc.updates():     # incremental updates as they come
            ...
        await vnc.pointer(10, 10, buttons=1)
        await vnc.start_audio()                # QEMU only: 48 kHz stereo s16le
        pcm = await vnc.audio(0.1)             # what arrived since the last call
"""

import asyncio
import contextlib
import io
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from PIL import Image

from loco_lan.errors import LocoError

RAW, COPY_RECT, ZRLE = 0, 1, 16
DESKTOP_SIZE = -223
QEMU_AUDIO = -259  # pseudo-encoding: the server acknowledges it with an empty rectangle
ENCODINGS = (ZRLE, COPY_RECT, RAW, DESKTOP_SIZE, QEMU_AUDIO)
QEMU_MESSAGE, QEMU_AUDIO_SUBTYPE = 255, 1
AUDIO_ENABLE, AUDIO_DISABLE, AUDIO_SET_FORMAT = 0, 1, 2
AUDIO_END, AUDIO_BEGIN, AUDIO_DATA = 0, 1, 2  # server operations
AUDIO_S16 = 3
AUDIO_BACKLOG = 1.0  # seconds of sound kept for a slow reader; older sound is dropped

SECURITY_NONE, SECURITY_VNC = 1, 2
# 32 bpp, depth 24, little endian, true colour, 8 bits per channel at shifts 16/8/0:
# a pixel arrives as bytes B, G, R, X; a ZRLE CPIXEL as B, G, R.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


class RFBError(LocoError):
    """The VNC server could not be reached, refused us, or broke the protocol."""


class RFBAuthError(RFBError):
    """The server wants a password we do not have, or rejected the one we gave."""


class RFBTimeout(RFBError):
    """No (complete) answer from the server in time; the session itself is still usable."""


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int
    encoding: int


@dataclass(frozen=True)
class Update:
    """What changed since the caller last looked: one applied FramebufferUpdate, or
    several merged when more than one landed before the caller woke."""

    rects: tuple[Rect, ...]
    resized: bool  # the desktop changed size: the next request should be a full one
    serial: int


def vnc_response(password: str, challenge: bytes) -> bytes:
    """VNC authentication: DES-encrypt the 16-byte challenge with the password
    (8 bytes, zero padded) as key, each key byte's bits mirrored (VNC's quirk)."""
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode("latin-1", "replace")[:8].ljust(8, b"\0"))
    # Three identical DES keys make Triple DES plain single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def to_png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


class RFBClient:
    """A connected, authenticated session; build it with :meth:`connect`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str, timeout: float
    ):
        self._reader = reader
        self._writer = writer
        self.address = address
        self.timeout = timeout
        self.name = ""
        self.version = (3, 8)
        self._frame = np.zeros((0, 0, 3), np.uint8)
        self._zlib = zlib.decompressobj()
        self._changed = asyncio.Condition()
        self._recent: deque[Update] = deque(maxlen=16)
        self._serial = 0
        self._failure: BaseException | None = None
        self._resized = False  # a DesktopSize came and no full update was asked for since
        self._task: asyncio.Task | None = None
        self.audio_supported = False  # the server acknowledged QEMU's audio extension
        self.audio_format = (48000, 2)  # rate, channels; samples are signed 16-bit little endian
        self._audio: deque[bytes] = deque()
        self._audio_bytes = 0
        self._audio_ready = asyncio.Event()
        self.audio_dropped = 0  # bytes dropped because nobody read them in time

    # -- connection -------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        password: str | None = None,
        *,
        timeout: float = 10.0,
        shared: bool = True,
        encodings: tuple[int, ...] = ENCODINGS,
    ) -> "RFBClient":
        """Open, negotiate and authenticate within ``timeout`` seconds."""
        address = f"{host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise RFBError(f"cannot connect to VNC at {address}: {exc or 'timed out'}") from exc
        client = cls(reader, writer, address, timeout)
        try:
            await asyncio.wait_for(client._handshake(password, shared, encodings), timeout)
        except TimeoutError as exc:
            await client.close()
            raise RFBError(f"VNC handshake with {address} timed out after {timeout:g}s") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:
            await client.close()
            raise RFBError(f"VNC handshake with {address} failed: {exc}") from exc
        except BaseException:
            await client.close()
            raise
        client._task = asyncio.create_task(client._read_messages(), name=f"rfb-reader {address}")
        return client

    async def _handshake(self, password: str | None, shared: bool, encodings: tuple[int, ...]) -> None:
        banner = await self._reader.readexactly(12)
        if not (banner.startswith(b"RFB ") and banner[7:8] == b"." and banner.endswith(b"\n")):
            raise RFBError(f"{self.address} is not a VNC server (it said {banner!r})")
        major, minor = int(banner[4:7]), int(banner[8:11])
        if major != 3 or minor < 3:
            raise RFBError(f"{self.address} speaks RFB {major}.{minor}, not 3.x")
        # 3.4-3.6 behave as 3.3; anything newer (Apple's 3.889) as 3.8.
        self.version = (3, 3) if minor < 7 else (3, 7) if minor == 7 else (3, 8)
        self._writer.write(b"RFB 003.%03d\n" % self.version[1])

        if self.version == (3, 3):
            (chosen,) = struct.unpack(">I", await self._reader.readexactly(4))
            if chosen == 0:
                raise RFBError(f"{self.address} refused the connection: {await self._reason()}")
        else:
            (count,) = await self._reader.readexactly(1)
            if count == 0:
                raise RFBError(f"{self.address} refused the connection: {await self._reason()}")
            offered = set(await self._reader.readexactly(count))
            if SECURITY_VNC in offered and (password is not None or SECURITY_NONE not in offered):
                chosen = SECURITY_VNC
            elif SECURITY_NONE in offered:
                chosen = SECURITY_NONE
            else:
                raise RFBError(f"{self.address} offers no security type we speak (offered {sorted(offered)})")
            self._writer.write(bytes([chosen]))

        if chosen == SECURITY_VNC:
            if password is None:
                raise RFBAuthError(f"{self.address} requires a VNC password")
            challenge = await self._reader.readexactly(16)
            self._writer.write(vnc_response(password, challenge))
        elif chosen != SECURITY_NONE:
            raise RFBError(f"{self.address} demands security type {chosen}, which we do not speak")
        if chosen == SECURITY_VNC or self.version == (3, 8):
            (result,) = struct.unpack(">I", await self._reader.readexactly(4))
            if result != 0:
                reason = await self._reason() if self.version == (3, 8) else "authentication failed"
                raise RFBAuthError(f"{self.address} rejected us: {reason}")

        self._writer.write(bytes([1 if shared else 0]))
        width, height = struct.unpack(">HH", await self._reader.readexactly(4))
        await self._reader.readexactly(16)  # the server's pixel format: we set ours below
        (name_length,) = struct.unpack(">I", await self._reader.readexactly(4))
        self.name = (await self._reader.readexactly(name_length)).decode("utf-8", "replace")
        self._frame = np.zeros((height, width, 3), np.uint8)
        self._writer.write(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        self._writer.write(struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))
        await self._writer.drain()

    async def _reason(self) -> str:
        (length,) = struct.unpack(">I", await self._reader.readexactly(4))
        return (await self._reader.readexactly(min(length, 4096))).decode(
            "utf-8", "replace"
        ) or "no reason given"

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2)

    async def __aenter__(self) -> "RFBClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- framebuffer ------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self._frame.shape[1]

    @property
    def height(self) -> int:
        return self._frame.shape[0]

    @property
    def framebuffer(self) -> np.ndarray:
        """The live HxWx3 RGB array (replaced on resize); copy it to keep a frame."""
        return self._frame

    async def request_update(
        self, incremental: bool = True, region: tuple[int, int, int, int] | None = None
    ) -> None:
        """Ask for an update; after a resize only a full (non-incremental) one repaints the screen."""
        x, y, width, height = region or (0, 0, self.width, self.height)
        if not incremental:
            self._resized = False
        await self._send(struct.pack(">BBHHHH", 3, 1 if incremental else 0, x, y, width, height))

    @property
    def serial(self) -> int:
        """How many FramebufferUpdates have been applied: a mark to wait past (:meth:`update_after`)."""
        return self._serial

    @property
    def resize_pending(self) -> bool:
        """The desktop changed size and no full update was asked for since."""
        return self._resized

    async def next_update(self, timeout: float | None = None) -> Update:
        """Wait for the next FramebufferUpdate to be applied (one finishing after this call)."""
        return await self._update_after(self._serial, timeout)

    async def update_after(self, seen: int, timeout: float | None = None) -> Update:
        """Everything applied since serial ``seen`` (waiting for it if nothing was yet)."""
        return await self._update_after(seen, timeout)

    async def updates(self, timeout: float | None = None) -> AsyncIterator[Update]:
        """Request and yield updates forever: incremental, or full after a resize."""
        while True:
            seen = self._serial
            await self.request_update(incremental=not self._resized)
            yield await self._update_after(seen, timeout)

    async def poll(self, wait: float) -> Update | None:
        """Ask for what changed and wait up to ``wait`` seconds: the update applied
        (after a resize, once the new screen's content has arrived), or None when
        the screen stayed still."""
        update = None
        try:
            async with asyncio.timeout(wait):
                while update is None or update.resized:
                    seen = self._serial
                    await self.request_update(incremental=not self._resized)
                    update = await self._update_after(seen, None)
        except TimeoutError:
            return None if update is None or update.resized else update
        return update

    async def refresh(self, timeout: float | None = None) -> np.ndarray:
        """A complete, current frame (a copy), following any resize on the way."""
        timeout = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    seen = self._serial
                    await self.request_update(incremental=False)
                    if not (await self._update_after(seen, None)).resized:
                        return self._frame.copy()
        except TimeoutError as exc:
            raise RFBTimeout(f"no full frame from {self.address} within {timeout:g}s") from exc

    async def _update_after(self, seen: int, timeout: float | None) -> Update:
        """The newest update once the serial passes ``seen``; ``timeout=None`` waits unbounded
        (the caller holds a deadline)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self._serial > seen or self._failure is not None)
        except TimeoutError as exc:
            if timeout is None:
                raise
            raise RFBTimeout(f"no screen update from {self.address} within {timeout:g}s") from exc
        if self._serial > seen:
            return self._merged_since(seen)
        raise RFBError(f"VNC connection to {self.address} lost: {self._failure}") from self._failure

    def _merged_since(self, seen: int) -> Update:
        """One Update for everything applied after serial ``seen`` (several may land before
        a waiter runs); if they are no longer all remembered, the whole screen counts as changed."""
        newer = [update for update in self._recent if update.serial > seen]
        rects = tuple(rect for update in newer for rect in update.rects)
        if newer[0].serial != seen + 1:
            rects = (Rect(0, 0, self.width, self.height, RAW),)
        return Update(rects, any(update.resized for update in newer), newer[-1].serial)

    async def screenshot(self, timeout: float | None = None) -> bytes:
        """The current screen as PNG bytes."""
        return to_png(await self.refresh(timeout))

    # -- sound (QEMU's audio extension) -----------------------------------------------------------

    async def start_audio(self, rate: int = 48000, channels: int = 2, timeout: float | None = None) -> None:
        """Ask the server to stream the guest's sound; RFBError when it cannot (not QEMU, or QEMU
        without ``-vnc ...,audiodev=``). QEMU acknowledges the extension as soon as it reads our
        encodings, so the answer to an update asked for now comes after it."""
        if not self.audio_supported:
            seen = self._serial
            await self.request_update(incremental=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout if timeout is None else timeout), self._changed:
                    await self._changed.wait_for(
                        lambda: self.audio_supported or self._failure is not None or self._serial > seen
                    )
        if not self.audio_supported:
            raise RFBError(f"{self.address} does not stream sound (QEMU needs -vnc ...,audiodev=<id>)")
        self.audio_format = (rate, channels)
        await self._send(struct.pack(">BBHBBI", QEMU_MESSAGE, QEMU_AUDIO_SUBTYPE, AUDIO_SET_FORMAT,
                                     AUDIO_S16, channels, rate))
        await self._send(struct.pack(">BBH", QEMU_MESSAGE, QEMU_AUDIO_SUBTYPE, AUDIO_ENABLE))

    async def audio(self, timeout: float | None = None) -> bytes:
        """The sound that arrived since the last call (interleaved s16le), waiting up to ``timeout``
        seconds for some; b"" when none came. RFBError once the connection is lost."""
        if not self._audio and self._failure is None:
            self._audio_ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._audio_ready.wait(), timeout)
        if not self._audio and self._failure is not None:
            raise RFBError(f"VNC connection to {self.address} lost: {self._failure}") from self._failure
        chunks = b"".join(self._audio)
        self._audio.clear()
        self._audio_bytes = 0
        return chunks

    def _keep_audio(self, data: bytes) -> None:
        rate, channels = self.audio_format
        limit = int(AUDIO_BACKLOG * rate) * channels * 2
        self._audio.append(data)
        self._audio_bytes += len(data)
        while self._audio_bytes > limit and len(self._audio) > 1:
            dropped = self._audio.popleft()
            self._audio_bytes -= len(dropped)
            self.audio_dropped += len(dropped)
        self._audio_ready.set()

    # -- input ------------------------------------------------------------------------------------

    async def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer; ``buttons`` is a mask (1 left, 2 middle, 4 right, 8/16 wheel)."""
        await self._send(struct.pack(">BBHH", 5, buttons, max(0, x), max(0, y)))

    async def key(self, keysym: int, down: bool) -> None:
        await self._send(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    async def press(self, keysym: int) -> None:
        await self.key(keysym, True)
        await self.key(keysym, False)

    async def _send(self, data: bytes) -> None:
        if self._failure is not None:
            raise RFBError(f"VNC connection to {self.address} lost: {self._failure}") from self._failure
        self._writer.write(data)
        try:
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RFBError(f"cannot send to VNC at {self.address}: {exc or 'timed out'}") from exc

    # -- server messages --------------------------------------------------------------------------

    async def _read_messages(self) -> None:
        try:
            while True:
                (kind,) = await self._reader.readexactly(1)
                if kind == 0:
                    await self._framebuffer_update()
                elif kind == 1:  # SetColourMapEntries: meaningless in true colour, skip it
                    _, count = struct.unpack(">xHH", await self._reader.readexactly(5))
                    await self._reader.readexactly(6 * count)
                elif kind == 2:  # Bell
                    pass
                elif kind == 3:  # ServerCutText (negative length: extended clipboard)
                    (length,) = struct.unpack(">xxxi", await self._reader.readexactly(7))
                    await self._reader.readexactly(abs(length))
                elif kind == QEMU_MESSAGE:
                    await self._qemu_message()
                else:
                    raise RFBError(f"unknown server message type {kind}")
        except asyncio.IncompleteReadError:
            self._failure = EOFError("closed by the server")
        except Exception as exc:  # the task's boundary: whatever broke the stream ends the session
            self._failure = exc
        async with self._changed:
            self._changed.notify_all()
        self._audio_ready.set()

    async def _qemu_message(self) -> None:
        subtype, operation = struct.unpack(">BH", await self._reader.readexactly(3))
        if subtype != QEMU_AUDIO_SUBTYPE:
            raise RFBError(f"unknown QEMU server message {subtype}")
        if operation == AUDIO_DATA:
            (length,) = struct.unpack(">I", await self._reader.readexactly(4))
            self._keep_audio(await self._reader.readexactly(length))
        elif operation not in (AUDIO_BEGIN, AUDIO_END):
            raise RFBError(f"unknown QEMU audio operation {operation}")

    async def _framebuffer_update(self) -> None:
        (count,) = struct.unpack(">xH", await self._reader.readexactly(3))
        rects, ops = [], []
        for _ in range(count):
            x, y, width, height, encoding = struct.unpack(">HHHHi", await self._reader.readexactly(12))
            rects.append(Rect(x, y, width, height, encoding))
            if encoding == RAW:
                data = await self._reader.readexactly(width * height * 4)
                ops.append(("put", x, y, decode_raw(data, width, height)))
            elif encoding == COPY_RECT:
                sx, sy = struct.unpack(">HH", await self._reader.readexactly(4))
                ops.append(("copy", x, y, (sx, sy, width, height)))
            elif encoding == ZRLE:
                (length,) = struct.unpack(">I", await self._reader.readexactly(4))
                data = self._zlib.decompress(await self._reader.readexactly(length))
                ops.append(("put", x, y, decode_zrle(data, width, height)))
            elif encoding == DESKTOP_SIZE:
                ops.append(("resize", width, height, None))
            elif encoding == QEMU_AUDIO:
                self.audio_supported = True
                rects.pop()  # an acknowledgement, not a change of the screen
            else:
                raise RFBError(f"server sent encoding {encoding}, which we did not ask for")
        if count and not rects:  # only acknowledgements (QEMU audio): nothing of the screen changed
            async with self._changed:
                self._changed.notify_all()
            return
        # Apply the whole update at once: observers only ever see complete frames.
        resized = False
        for op, a, b, payload in ops:
            if op == "put":
                self._frame[b : b + payload.shape[0], a : a + payload.shape[1]] = payload
            elif op == "copy":
                sx, sy, width, height = payload
                self._frame[b : b + height, a : a + width] = self._frame[
                    sy : sy + height, sx : sx + width
                ].copy()
            else:
                self._frame = np.zeros((b, a, 3), np.uint8)
                resized = self._resized = True
        async with self._changed:
            self._serial += 1
            self._recent.append(Update(tuple(rects), resized, self._serial))
            self._changed.notify_all()


# -- decoders (pure) -------------------------------------------------------------------------------


def decode_raw(data: bytes, width: int, height: int) -> np.ndarray:
    """Raw pixels B, G, R, X to an RGB array."""
    return np.frombuffer(data, np.uint8).reshape(height, width, 4)[..., 2::-1]


def decode_zrle(data: bytes, width: int, height: int) -> np.ndarray:
    """ZRLE tiles (already inflated) to an RGB array. CPIXELs are 3 bytes B, G, R."""
    out = np.empty((height, width, 3), np.uint8)
    view = memoryview(data)
    pos = 0

    def pixels(count: int) -> np.ndarray:
        nonlocal pos
        if pos + 3 * count > len(view):
            raise RFBError("ZRLE data ends inside a tile")
        block = np.frombuffer(view[pos : pos + 3 * count], np.uint8).reshape(count, 3)[:, ::-1]
        pos += 3 * count
        return block

    for ty in range(0, height, 64):
        th = min(64, height - ty)
        for tx in range(0, width, 64):
            tw = min(64, width - tx)
            tile = out[ty : ty + th, tx : tx + tw]
            if pos >= len(view):
                raise RFBError("ZRLE data ends before the last tile")
            sub = view[pos]
            pos += 1
            if sub == 0:
                tile[:] = pixels(tw * th).reshape(th, tw, 3)
            elif sub == 1:
                tile[:] = pixels(1)[0]
            elif 2 <= sub <= 16:
                palette = pixels(sub)
                bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                row_bytes = (tw * bits + 7) // 8
                packed = np.frombuffer(view[pos : pos + row_bytes * th], np.uint8).reshape(th, row_bytes)
                pos += row_bytes * th
                indices = np.unpackbits(packed, axis=1).reshape(th, row_bytes * 8 // bits, bits)
                indices = indices.dot(1 << np.arange(bits - 1, -1, -1))[:, :tw]
                tile[:] = palette[_checked(indices, sub)]
            elif sub == 128 or sub >= 130:
                palette = pixels(sub - 128) if sub >= 130 else None
                heads, pos = _rle_runs(view, pos, tw * th, palette is None)
                if palette is None:  # heads are offsets of CPIXELs in the data
                    offsets = np.array(heads[0])[:, None] + np.arange(3)
                    colours = np.frombuffer(view, np.uint8)[offsets][:, ::-1]
                else:
                    colours = palette[_checked(np.array(heads[0]), len(palette))]
                tile[:] = np.repeat(colours, heads[1], axis=0).reshape(th, tw, 3)
            else:
                raise RFBError(f"invalid ZRLE subencoding {sub}")
    return out


def _checked(indices: np.ndarray, size: int) -> np.ndarray:
    if indices.size and indices.max() >= size:
        raise RFBError(f"ZRLE palette index {indices.max()} beyond its {size} colours")
    return indices


def _rle_runs(view: memoryview, pos: int, total: int, plain: bool) -> tuple[tuple[list, list], int]:
    """Parse one RLE tile's runs: ``((heads, lengths), new position)``. A head is a
    CPIXEL's offset (plain RLE) or a palette index; lengths are (sum of bytes while
    255) + 1, and a palette index below 128 is a single pixel with no length."""
    heads: list[int] = []
    lengths: list[int] = []
    filled = 0
    try:
        while filled < total:
            if plain:
                heads.append(pos)
                pos += 3
            else:
                index = view[pos]
                pos += 1
                heads.append(index & 127)
                if index < 128:
                    lengths.append(1)
                    filled += 1
                    continue
            run = 1
            while True:
                step = view[pos]
                pos += 1
                run += step
                if step != 255:
                    break
            lengths.append(run)
            filled += run
    except IndexError:
        raise RFBError("ZRLE data ends inside a tile") from None
    if filled > total or pos > len(view):
        raise RFBError("ZRLE run overflows its tile" if filled > total else "ZRLE data ends inside a tile")
    return (heads, lengths), pos
