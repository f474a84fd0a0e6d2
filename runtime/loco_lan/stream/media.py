"""Media for the streaming gateway: a guest's screen and sound encoded once, then handed as the
same packets to every viewer.

aiortc encodes once per RTCRtpSender, so its CPU grows with each viewer; but a track whose
``recv()`` returns ``av.Packet`` is only packetised. So each guest has one :class:`VideoEncoder`
and one :class:`AudioEncoder` (PyAV), a :class:`Broadcast` of their packets, and every viewer
gets a :class:`PacketTrack` subscribed to it. A viewer joins at a keyframe; one that falls
behind is cut back to the next keyframe instead of piling up latency.
"""

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

VIDEO_CLOCK = fractions.Fraction(1, 90000)
AUDIO_RATE = 48000
AUDIO_CLOCK = fractions.Fraction(1, AUDIO_RATE)
AUDIO_FRAME = 960  # 20 ms at 48 kHz: what Opus and the browsers expect
MAX_BACKLOG = 1.0  # seconds of media a viewer may fall behind before it is cut to a keyframe
CODECS = ("vp8", "h264")


# -- fan-out -------------------------------------------------------------------------------------


class Subscriber:
    """One viewer's queue of one broadcast."""

    def __init__(self, broadcast: "Broadcast"):
        self.broadcast = broadcast
        self.packets: deque[av.Packet] = deque()
        self.ready = asyncio.Event()
        self.synced = not broadcast.keyframes  # video starts at a keyframe; audio anywhere
        self.closed = False
        self.cuts = 0

    def put(self, packet: av.Packet, keyframe: bool) -> None:
        if not self.synced:
            if not keyframe:
                return
            self.synced = True
        self.packets.append(packet)
        if len(self.packets) > 1 and (packet.pts - self.packets[0].pts) * packet.time_base > MAX_BACKLOG:
            # A viewer this far behind only gets later: drop what it has not taken and start it
            # again at the next keyframe (asked for now) so it is live again at once.
            self.packets.clear()
            self.cuts += 1
            if self.broadcast.keyframes:
                self.synced = False
                self.broadcast.want_keyframe()
        self.ready.set()

    async def get(self) -> av.Packet:
        while not self.packets:
            if self.closed:
                raise MediaStreamError
            self.ready.clear()
            await self.ready.wait()
        packet = self.packets.popleft()
        self.broadcast.sent_packets += 1
        self.broadcast.sent_bytes += packet.size
        return packet

    def close(self) -> None:
        self.closed = True
        self.ready.set()
        self.broadcast.subscribers.discard(self)


class Broadcast:
    """Packets of one encoder to every subscriber. ``keyframes``: subscribers wait for a keyframe
    before their first packet, and ``on_keyframe`` is called when one is needed."""

    def __init__(self, keyframes: bool, on_keyframe: Callable[[], None] = lambda: None):
        self.keyframes = keyframes
        self.want_keyframe = on_keyframe
        self.subscribers: set[Subscriber] = set()
        self.sent_packets = 0  # handed to viewers, all of them summed
        self.sent_bytes = 0

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self)
        self.subscribers.add(subscriber)
        if self.keyframes:
            self.want_keyframe()
        return subscriber

    def publish(self, packet: av.Packet, keyframe: bool = True) -> None:
        for subscriber in list(self.subscribers):
            subscriber.put(packet, keyframe)


class PacketTrack(MediaStreamTrack):
    """A viewer's track: encoded packets of the guest, for aiortc to packetise (not re-encode)."""

    def __init__(self, kind: str, subscriber: Subscriber):
        super().__init__()
        self.kind = kind
        self.subscriber = subscriber

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.subscriber.get()

    def stop(self) -> None:
        super().stop()
        self.subscriber.close()


# -- video ---------------------------------------------------------------------------------------


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]


class YuvCanvas:
    """The guest's screen in yuv420p, updated where it changed: each change is converted once,
    whatever the number of viewers (aiortc's own relay converting rgb24 for several encoders
    crashes: its issue #767)."""

    def __init__(self, width: int, height: int):
        # yuv420p wants even sides, and PyAV's packed yuv420p arrays a height divisible by 4.
        self.width, self.height = width + width % 2, height + -height % 4
        self.planes = np.zeros((self.height * 3 // 2, self.width), np.uint8)
        self.planes[self.height :] = 128  # neutral chroma: black until painted
        quarter = self.height // 4
        self.y = self.planes[: self.height]
        self.u = self.planes[self.height : self.height + quarter].reshape(self.height // 2, self.width // 2)
        self.v = self.planes[self.height + quarter :].reshape(self.height // 2, self.width // 2)

    def paint(self, rgb: np.ndarray, x0: int, y0: int) -> None:
        """Convert ``rgb`` (an even-aligned piece of the screen whose top left is x0, y0)."""
        height, width = rgb.shape[:2]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # AREA averages each 2x2 block, so a converted piece matches the same piece of a whole frame.
        yuv = frame.reformat(format="yuv420p", interpolation="AREA")
        self.y[y0 : y0 + height, x0 : x0 + width] = _plane(yuv, 0)
        self.u[y0 // 2 : (y0 + height) // 2, x0 // 2 : (x0 + width) // 2] = _plane(yuv, 1)
        self.v[y0 // 2 : (y0 + height) // 2, x0 // 2 : (x0 + width) // 2] = _plane(yuv, 2)

    def frame(self) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(self.planes, format="yuv420p")


def damaged_box(rects, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The even-aligned bounding box (x0, y0, x1, y1) of the changed rectangles, clipped."""
    if not rects:
        return None
    x0 = max(0, min(r.x for r in rects)) & ~1
    y0 = max(0, min(r.y for r in rects)) & ~1
    x1 = min(width, max(r.x + r.width for r in rects))
    y1 = min(height, max(r.y + r.height for r in rects))
    x1, y1 = min(x1 + x1 % 2, width), min(y1 + y1 % 2, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


@dataclass(frozen=True)
class VideoSettings:
    codec: str = "vp8"
    bitrate: int = 2_500_000  # bits per second, the most a guest's stream may take
    speed: int = 12  # libvpx cpu-used (realtime: 4 slow .. 16 fastest); x264 presets follow it


class VideoEncoder:
    """One guest's video encoder: VP8 (libvpx, realtime) or H.264 Constrained Baseline (libx264,
    zero latency, profile-level-id 42e01f as browsers take it). Keyframes only when asked for."""

    def __init__(self, settings: VideoSettings):
        if settings.codec not in CODECS:
            raise ValueError(f"codec {settings.codec!r}: expected one of {', '.join(CODECS)}")
        self.settings = settings
        self.context: av.CodecContext | None = None

    def _open(self, width: int, height: int) -> av.CodecContext:
        s = self.settings
        if s.codec == "vp8":
            context = av.CodecContext.create("libvpx", "w")
            context.options = {
                "deadline": "realtime",
                "cpu-used": str(s.speed),
                "lag-in-frames": "0",  # every frame out at once
                "error-resilient": "1",
                "static-thresh": "100",  # unchanged areas of a desktop cost next to nothing
                "undershoot-pct": "95",
                "overshoot-pct": "15",
                "max-intra-rate": "300",
                "maxrate": str(s.bitrate),
                "bufsize": str(s.bitrate),
            }
            context.gop_size = 1 << 30  # no periodic keyframes: a viewer asks (PLI) when it needs one
        else:
            context = av.CodecContext.create("libx264", "w")
            preset = "ultrafast" if s.speed >= 12 else "superfast" if s.speed >= 8 else "veryfast"
            context.options = {
                "preset": preset,
                "tune": "zerolatency",
                "profile": "baseline",  # x264's baseline is Constrained Baseline (42e0..)
                "level": "31",
                "forced-idr": "1",
                "x264-params": "repeat-headers=1:keyint=infinite",
                "maxrate": str(s.bitrate),
                "bufsize": str(s.bitrate),
            }
        context.width, context.height = width, height
        context.pix_fmt = "yuv420p"
        context.time_base = VIDEO_CLOCK
        # The rate control budgets a frame's bits from this (x264 would otherwise take 90000 fps from
        # the clock and starve every frame); the real pace comes from the timestamps.
        context.framerate = fractions.Fraction(30)
        context.bit_rate = s.bitrate
        context.thread_count = 1  # guests encode in parallel, one thread each
        return context

    def encode(self, frame: av.VideoFrame, pts: int, keyframe: bool) -> list[av.Packet]:
        """Packets for ``frame`` shown at ``pts`` (90 kHz); a new size opens a new stream
        (starting with a keyframe). Runs in a worker thread."""
        if self.context is None or (self.context.width, self.context.height) != (frame.width, frame.height):
            self.context = self._open(frame.width, frame.height)
            keyframe = True
        frame.pts = pts
        frame.time_base = VIDEO_CLOCK
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        packets = self.context.encode(frame)
        for packet in packets:
            packet.time_base = VIDEO_CLOCK
        return packets


# -- audio ---------------------------------------------------------------------------------------


class AudioEncoder:
    """The guest's sound (48 kHz stereo s16le) as 20 ms Opus packets, once for every viewer."""

    def __init__(self, bitrate: int = 96000):
        self.context = av.CodecContext.create("libopus", "w")
        self.context.sample_rate = AUDIO_RATE
        self.context.layout = "stereo"
        self.context.format = "s16"
        self.context.bit_rate = bitrate
        self.context.time_base = AUDIO_CLOCK
        self.context.options = {"application": "lowdelay", "frame_duration": "20"}
        self.pts = 0

    def catch_up(self, pts: int) -> None:
        """Continue at ``pts`` (48 kHz) if that is later: sound after a gap keeps real time."""
        if pts > self.pts:
            self.pts = pts - pts % AUDIO_FRAME

    def encode(self, pcm: bytes) -> list[av.Packet]:
        """``pcm`` holds exactly one 20 ms frame."""
        samples = np.frombuffer(pcm, np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.pts
        frame.time_base = AUDIO_CLOCK
        self.pts += AUDIO_FRAME
        packets = self.context.encode(frame)
        for packet in packets:
            packet.time_base = AUDIO_CLOCK
        return packets


def level(pcm: bytes) -> float:
    """RMS of s16 samples, 0..1 (for metrics and tests)."""
    samples = np.frombuffer(pcm, np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples**2)) / 32768) if samples.size else 0.0
