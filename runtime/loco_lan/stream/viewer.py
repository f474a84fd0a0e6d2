"""One viewer of one guest: an aiortc peer connection sending the guest's shared packets, and
the ``input`` data channel that turns the viewer's keys and pointer into the guest's (only for
a viewer that presented the player token; the others watch)."""

import asyncio
import contextlib
import json
import logging

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import candidate_from_sdp

from loco_lan.stream import protocol
from loco_lan.stream.guest import Guest

log = logging.getLogger(__name__)


class OfferError(ValueError):
    """An offer the gateway cannot answer (bad SDP, no video asked for, codec not offered)."""


def video_codecs(codec: str):
    """The codecs the video transceiver may answer with: the one the guest is encoded in (and
    its retransmission format). H.264 is Constrained Baseline, the profile browsers decode."""
    def wanted(capability) -> bool:
        mime = capability.mimeType.lower()
        if codec == "h264":
            return mime == "video/h264" and capability.parameters.get("profile-level-id", "").lower() == "42e01f"
        return mime == "video/vp8"

    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if wanted(c)] + [c for c in codecs if c.mimeType.lower() == "video/rtx"]


class Viewer:
    def __init__(self, guest: Guest, player: bool, codec: str, on_closed=lambda viewer: None):
        self.guest = guest
        self.player = player
        self.codec = codec
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = None
        self._tracks = ()
        self.held: set[int] = set()  # keysyms this viewer holds down on the guest
        self.rejected_input = 0
        self._on_closed = on_closed
        self._closed = False
        self._input: asyncio.Queue = asyncio.Queue(maxsize=256)
        self._input_task: asyncio.Task | None = None
        self.pc.on("datachannel", self._datachannel)
        self.pc.on("connectionstatechange", self._state_changed)

    async def answer(self, sdp: str, kind: str) -> RTCSessionDescription:
        if kind != "offer":
            raise OfferError(f"expected an SDP offer, got {kind!r}")
        if not sdp.lstrip().startswith("v=0") or "\nm=" not in sdp:
            raise OfferError("malformed SDP offer: it must start with v=0 and describe media (m= lines)")
        video, audio = self.guest.subscribe()
        self._tracks = (video, audio)
        # The transceivers exist before the offer is read, so the offer's video is answered with the
        # one codec the guest is encoded in (aiortc settles the codecs while reading the offer).
        sender = self.pc.addTransceiver(video, direction="sendonly")
        sender.setCodecPreferences(video_codecs(self.codec))
        # Keyframes come from the guest's one encoder, not from aiortc (which only packetises
        # here): a PLI/FIR from this viewer asks the guest for one.
        sender.sender._send_keyframe = self.guest.want_keyframe
        self.pc.addTransceiver(audio, direction="sendonly").setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"])
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except OperationError as exc:
            raise OfferError(f"the offer has no codec in common with the gateway ({self.codec} video, opus audio): "
                             f"{exc}") from exc
        except (ValueError, KeyError, IndexError, TypeError, AssertionError, InvalidAccessError) as exc:
            raise OfferError(f"malformed SDP offer: {exc or type(exc).__name__}") from exc
        if sender.mid is None:
            raise OfferError("the offer asks for no video (add a recvonly video transceiver)")
        try:
            answer = await self.pc.createAnswer()
        except (ValueError, RuntimeError, InvalidStateError) as exc:
            raise OfferError(f"cannot answer this offer: {exc}") from exc
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription

    async def add_candidate(self, candidate: dict | None) -> None:
        """A trickled ICE candidate from the viewer (browser RTCIceCandidate JSON)."""
        if not candidate or not candidate.get("candidate"):
            return  # end of candidates
        text = candidate["candidate"]
        parsed = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    # -- input -------------------------------------------------------------------------------------

    def _datachannel(self, channel) -> None:
        if channel.label != "input":
            return
        self.channel = channel
        channel.on("message", self._message)
        self._input_task = asyncio.ensure_future(self._apply_input())
        if channel.readyState == "open":
            self.send_state()
        else:
            channel.on("open", self.send_state)

    def send_state(self) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps({
                "type": "state", "player": self.player, "connected": self.guest.state == "live",
                "width": self.guest.width, "height": self.guest.height,
            }))

    def _message(self, message) -> None:
        if not self.player:
            self.rejected_input += 1
            return
        try:
            event = protocol.decode(message)
        except protocol.InputError as exc:
            self.rejected_input += 1
            log.debug("%s: dropped input: %s", self.guest.id, exc)
            return
        with contextlib.suppress(asyncio.QueueFull):  # a flood is cut, never buffered without end
            self._input.put_nowait(event)

    async def _apply_input(self) -> None:
        """Events in arrival order, one at a time (a key's down before its up)."""
        while True:
            event = await self._input.get()
            try:
                await self.guest.send(event, self.held)
            except Exception as exc:  # the guest's session broke: it reconnects on its own
                log.debug("%s: input not delivered: %s", self.guest.id, exc)

    # -- end ---------------------------------------------------------------------------------------

    async def _state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._input_task:
            self._input_task.cancel()
        await self.guest.release(self.held)
        for track in self._tracks:
            track.stop()
        await self.pc.close()
        self._on_closed(self)
