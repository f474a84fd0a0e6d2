"""One guest as the gateway streams it: one RFB session (the project's RFB client), shared by
every viewer, its screen encoded once and its sound encoded once.

The capture loop is damage-driven: it asks QEMU for what changed and encodes only then, at
most at the guest's frame rate (full when focused, reduced otherwise), plus a slow refresh
while nothing changes so a late packet loss heals. With no viewer it encodes nothing and only
looks at the screen once a second (so its size and state stay known, and the first viewer's
picture comes at once). A keyframe is made when a viewer joins or
asks (PLI). When the guest goes away the session is dialled again with backoff; viewers keep
their peer connections and their streams resume with the next keyframe.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from loco_lan import rfb
from loco_lan.stream import protocol
from loco_lan.stream.media import (
    AUDIO_FRAME,
    AudioEncoder,
    Broadcast,
    PacketTrack,
    VideoEncoder,
    VideoSettings,
    YuvCanvas,
    damaged_box,
    level,
)

log = logging.getLogger(__name__)

RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0
AUDIO_FRAME_BYTES = AUDIO_FRAME * 2 * 2  # stereo s16
AUDIO_MAX_LAG = 0.1  # seconds of sound queued before the oldest is dropped: latency stays low
IDLE_LOOK = 1.0  # seconds between looks at a screen nobody watches
FULL_RETRY = 2.0  # seconds before a whole screen asked for and not come is asked for again
INPUT_BOOST, INPUT_INTERVAL = 0.5, 1 / 60  # after input, for this long, frames may come this often


@dataclass(frozen=True)
class GuestSettings:
    focused_fps: float = 30.0
    unfocused_fps: float = 5.0
    refresh: float = 0.5  # seconds between encodes of an unchanged screen
    video: VideoSettings = field(default_factory=VideoSettings)
    audio: bool = True
    password: str | None = None
    connect_timeout: float = 5.0


@dataclass
class GuestCounters:
    frames_encoded: int = 0
    keyframes: int = 0
    encode_seconds: float = 0.0
    bytes_encoded: int = 0
    audio_packets: int = 0
    reconnects: int = 0
    updates: int = 0
    input_events: int = 0


class Guest:
    """A guest's stream: ``start()`` it, ``subscribe()`` viewers, ``send()`` their input."""

    def __init__(self, instance_id: str, host: str, port: int, settings: GuestSettings, executor: Executor):
        self.id = instance_id
        self.address = (host, port)
        self.settings = settings
        self.executor = executor
        self.focused = True
        self.state = "connecting"  # connecting, live, reconnecting
        self.error = ""
        self.width = self.height = 0
        self.counters = GuestCounters()
        # How many viewers hold each key down: one let go (its stream replaced by a redial that
        # presses the key again) does not release it under the other.
        self._holders: Counter[int] = Counter()
        self.video = Broadcast(keyframes=True, on_keyframe=self.want_keyframe)
        self.audio = Broadcast(keyframes=False)
        self.audio_level = 0.0
        self.on_change: Callable[[], None] = lambda: None  # state or size changed
        self._session: rfb.RFBClient | None = None
        self._keyframe = True
        self._input_at = -1e9
        # Media timestamps run on one clock for the guest's whole life: a reconnect must not send
        # them back (a browser would take the new frames for late ones and drop them).
        self._epoch = time.monotonic()
        self._audio_encoder = AudioEncoder()
        self._input = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._encoder = VideoEncoder(settings.video)

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"guest {self.id}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self) -> tuple[PacketTrack, PacketTrack]:
        return PacketTrack("video", self.video.subscribe()), PacketTrack("audio", self.audio.subscribe())

    @property
    def viewers(self) -> int:
        return len(self.video.subscribers)

    def want_keyframe(self) -> None:
        self._keyframe = True
        self._wake.set()

    def set_focused(self, focused: bool) -> None:
        if focused != self.focused:
            self.focused = focused
            self._wake.set()  # a newly focused guest speeds up at once

    @property
    def frame_interval(self) -> float:
        """The least time between two frames: the frame rate's, but right after a player's input
        at most INPUT_INTERVAL, so the guest's answer is not held back by the pacing."""
        interval = 1.0 / (self.settings.focused_fps if self.focused else self.settings.unfocused_fps)
        if time.monotonic() - self._input_at < INPUT_BOOST:
            return min(interval, INPUT_INTERVAL)
        return interval

    def _set_state(self, state: str, error: str = "") -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            self.on_change()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                session = await rfb.RFBClient.connect(
                    *self.address, self.settings.password, timeout=self.settings.connect_timeout
                )
            except rfb.RFBError as exc:
                failures += 1
                delay = min(RECONNECT_MAX, RECONNECT_FIRST * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                if failures == 1 or failures % 10 == 0:
                    log.warning("%s: %s; trying again in %.1fs", self.id, exc, delay)
                self._set_state("reconnecting" if self.counters.reconnects or self.width else "connecting", str(exc))
                await asyncio.sleep(delay)
                continue
            if self.width:
                self.counters.reconnects += 1
            failures = 0
            self._session = session
            log.info("%s: connected to %s:%d (%s)", self.id, *self.address, session.name)
            audio = None
            try:
                if self.settings.audio:
                    audio = asyncio.create_task(self._sound(session), name=f"audio {self.id}")
                await self._capture(session)
            except rfb.RFBError as exc:
                log.warning("%s: %s", self.id, exc)
                self._set_state("reconnecting", str(exc))
            finally:
                self._session = None
                if audio:
                    audio.cancel()
                    with contextlib.suppress(asyncio.CancelledError, rfb.RFBError):
                        await audio
                await session.close()

    # -- video --------------------------------------------------------------------------------------

    async def _capture(self, session: rfb.RFBClient) -> None:
        loop = asyncio.get_running_loop()
        canvas: YuvCanvas | None = None
        last_encode = -1e9
        self._keyframe = True
        seen = session.serial
        await session.request_update(incremental=False)
        while True:
            if not self.video.subscribers:
                seen = await self._watch_unseen(session, seen)
                if self.video.subscribers:  # a viewer came: start it from a whole screen
                    canvas = None
                    await session.request_update(incremental=False)
                continue
            wait = max(0.0, last_encode + self.settings.refresh - time.monotonic())
            update = await self._change(session, seen, wait, must_wait=canvas is None)
            if update is None and canvas is None:
                # The whole screen asked for has not come (a QEMU just started may drop the
                # request): ask again rather than wait for ever.
                await session.request_update(incremental=False)
                continue
            if update is not None:
                seen = update.serial
                # Ask for the next change before encoding this one: QEMU gathers it meanwhile.
                await session.request_update(incremental=not session.resize_pending)
                if update.resized:
                    canvas = None
                    continue  # the new screen's content comes with the full update just asked for
            frame = session.framebuffer
            height, width = frame.shape[:2]
            if not width or not height:
                continue
            if canvas is None or (width, height) != (self.width, self.height):
                canvas = YuvCanvas(width, height)
                box = (0, 0, width, height)
                if (width, height) != (self.width, self.height):
                    self.width, self.height = width, height
                    log.info("%s: screen is %dx%d", self.id, width, height)
                    self.on_change()
            else:
                box = damaged_box(update.rects, width, height) if update else None
            if self.state != "live":
                self._set_state("live")
            if update is not None:
                self.counters.updates += 1
            # Copy the changed part now, in the loop: the RFB reader may change the framebuffer
            # while a worker converts it.
            piece = frame[box[1] : box[3], box[0] : box[2]].copy() if box else None
            keyframe, self._keyframe = self._keyframe, False
            pts = int((time.monotonic() - self._epoch) * 90000)
            started_encode = time.perf_counter()
            packets = await loop.run_in_executor(self.executor, self._encode, canvas, piece, box, pts, keyframe)
            self.counters.encode_seconds += time.perf_counter() - started_encode
            last_encode = time.monotonic()
            for packet in packets:
                key = packet.is_keyframe
                self.counters.frames_encoded += 1
                self.counters.keyframes += key
                self.counters.bytes_encoded += packet.size
                self.video.publish(packet, key)
            # Pace to the frame rate; changes meanwhile are merged into the next frame.
            rest = last_encode - time.monotonic() + self.frame_interval
            if rest > 0 and not self._keyframe:
                await self._pause(rest)

    async def _pause(self, seconds: float) -> None:
        """Wait out the frame's slot, or less when a keyframe is wanted or a player's input came."""
        self._wake.clear()
        self._input.clear()
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._input.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _watch_unseen(self, session: rfb.RFBClient, seen: int) -> int:
        """Nobody watches: follow the screen's size once a second, encode nothing; back at once
        when a viewer comes (it asks for a keyframe, which wakes this)."""
        if session.serial == seen:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_LOOK)
            if self.video.subscribers:
                return seen
            await session.request_update(incremental=not session.resize_pending)
        try:
            update = await session.update_after(seen, timeout=IDLE_LOOK)
        except rfb.RFBTimeout:
            return seen  # nothing changed
        height, width = session.framebuffer.shape[:2]
        if not update.resized:
            if (width, height) != (self.width, self.height):
                self.width, self.height = width, height
                self.on_change()
            if self.state != "live":
                self._set_state("live")
        return update.serial

    async def _change(self, session: rfb.RFBClient, seen: int, refresh_in: float, must_wait: bool) -> rfb.Update | None:
        """The updates applied since ``seen``, or None when a keyframe is wanted or the refresh is
        due first (``must_wait``: the first screen has not come yet: wait for it, FULL_RETRY at most)."""
        if session.serial > seen:
            return await session.update_after(seen)
        if self._keyframe and not must_wait:
            return None
        self._wake.clear()
        updated = asyncio.ensure_future(session.update_after(seen))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({updated} if must_wait else {updated, woken},
                               timeout=FULL_RETRY if must_wait else refresh_in, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not updated.done():
                updated.cancel()
        if updated.done() and not updated.cancelled():
            return updated.result()  # raises RFBError when the session is lost
        return None

    def _encode(self, canvas: YuvCanvas, piece: np.ndarray | None, box, pts: int, keyframe: bool):
        if piece is not None:
            canvas.paint(piece, box[0], box[1])
        return self._encoder.encode(canvas.frame(), pts, keyframe)

    # -- sound --------------------------------------------------------------------------------------

    async def _sound(self, session: rfb.RFBClient) -> None:
        """The guest's sound, clocked by this machine: a 20 ms Opus packet every 20 ms, silence
        when the guest plays nothing, the oldest sound dropped past AUDIO_MAX_LAG."""
        try:
            await session.start_audio(rate=48000, channels=2)
        except rfb.RFBError as exc:
            log.info("%s: no sound: %s", self.id, exc)
            return
        loop = asyncio.get_running_loop()
        encoder = self._audio_encoder
        encoder.catch_up(int((time.monotonic() - self._epoch) * 48000))
        pending = bytearray()
        next_at = time.monotonic()
        max_bytes = int(AUDIO_MAX_LAG * 48000) * 4
        while True:
            pending += await session.audio(max(0.0, next_at - time.monotonic()))
            if len(pending) > max_bytes:
                del pending[: len(pending) - max_bytes]
            now = time.monotonic()
            while next_at <= now:
                chunk = bytes(pending[:AUDIO_FRAME_BYTES]).ljust(AUDIO_FRAME_BYTES, b"\0")
                del pending[:AUDIO_FRAME_BYTES]
                self.audio_level = level(chunk)
                if self.audio.subscribers:  # nobody listens: the sound is read and dropped
                    for packet in await loop.run_in_executor(self.executor, encoder.encode, chunk):
                        self.counters.audio_packets += 1
                        self.audio.publish(packet)
                next_at += AUDIO_FRAME / 48000
                if now - next_at > 1.0:  # this machine stalled: do not make up for it in a burst
                    next_at = now

    # -- input --------------------------------------------------------------------------------------

    async def send(self, event: protocol.Event, held: set[int]) -> None:
        """Pass a viewer's event to the guest; ``held`` tracks the keys it holds down (for Release)."""
        session = self._session
        if session is None or not self.width:
            return  # reconnecting: input is dropped, as on a real cable pulled out
        self.counters.input_events += 1
        self._input_at = time.monotonic()
        self._input.set()  # cut a pacing wait short: the answer to this input is due soon
        if isinstance(event, protocol.Key):
            if not event.down:
                await self._let_go(session, event.keysym, held)
                return
            if event.keysym not in held:
                held.add(event.keysym)
                self._holders[event.keysym] += 1
            await session.key(event.keysym, True)
        elif isinstance(event, protocol.Pointer):
            await session.pointer(*self._pixels(event.x, event.y), event.buttons)
        elif isinstance(event, protocol.Wheel):
            x, y = self._pixels(event.x, event.y)
            for steps, less, more in ((event.dy, protocol.WHEEL_UP, protocol.WHEEL_DOWN),
                                      (event.dx, protocol.WHEEL_LEFT, protocol.WHEEL_RIGHT)):
                for _ in range(abs(steps)):
                    await session.pointer(x, y, more if steps > 0 else less)
                    await session.pointer(x, y, 0)
        else:
            await self.release(held)

    async def release(self, held: set[int]) -> None:
        session = self._session
        for keysym in sorted(held):
            with contextlib.suppress(rfb.RFBError):
                await self._let_go(session, keysym, held)

    async def _let_go(self, session: rfb.RFBClient | None, keysym: int, held: set[int]) -> None:
        """A viewer's key up: sent to the guest unless another viewer still holds that key."""
        if keysym in held:
            held.discard(keysym)
            self._holders[keysym] -= 1
            if self._holders[keysym] > 0:
                return
            del self._holders[keysym]
        if session is not None:
            await session.key(keysym, False)

    def _pixels(self, x: int, y: int) -> tuple[int, int]:
        return protocol.to_pixels(x, self.width), protocol.to_pixels(y, self.height)
