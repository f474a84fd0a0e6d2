"""The streaming gateway over HTTP and WebSocket (aiohttp), one origin for the players:

- ``POST /stream/<id>/offer``   ``{"sdp", "type": "offer", "token"?}`` -> the answer, plus
  ``"player"`` (whether this viewer may send input); the token may also come as
  ``Authorization: Bearer``
- ``GET  /signal``              WebSocket signalling as today's clients speak it (register,
  signal with a target, candidates, ``__ping``)
- ``GET  /api/instances``       the instances (``instances.json``) with each stream's state
- ``GET  /api/config/webrtc``   ``webrtc.json``, TURN servers given short-lived credentials (with
  ``--turn-secret-file``: coturn's ``use-auth-secret``); ``GET /api/config/hotkeys``: ``hotkeys.json``
  (validated; the VR controllers' defaults filled in)
- ``/api/active*``, ``/active`` the focus service's API and WebSocket, passed through, so a
  page needs no second origin (the chart's Ingress may route them to the focus service itself)
- ``GET  /healthz``, ``GET /metrics`` (Prometheus text)
- everything else: the web client's files, when ``--web-root`` names them (``/vr``: the VR scene).

Bad requests get a 4xx with a one-line JSON error and never touch other viewers.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

from loco_lan import schemas
from loco_lan.aioweb import serve_until_stopped
from loco_lan.errors import LocoError
from loco_lan.fsutil import read_json
from loco_lan.stream.guest import Guest, GuestSettings
from loco_lan.stream.viewer import OfferError, Viewer

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # an SDP offer is a few KiB
MAX_VIEWERS = 32  # per guest
FOCUS_RECONNECT_MAX = 10.0
SIGNAL_HEARTBEAT = 30.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def vnc_address(entry: dict) -> tuple[str, int]:
    """host, port of an instance's ``vncUrl`` (``host:port``, ``[v6]:port`` or ``vnc://host:port``)."""
    url = str(entry.get("vncUrl") or "")
    url = url.split("://", 1)[-1].rstrip("/")
    host, _, port = url.rpartition(":")
    if not host or not port.isdigit():
        raise LocoError(f"instance {entry.get('id')!r}: vncUrl {entry.get('vncUrl')!r} is not host:port")
    return host.strip("[]"), int(port)


def turn_credentials(secret: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    """A TURN username and password a coturn with ``use-auth-secret`` accepts until ``ttl``
    seconds from now (the TURN REST API: username "<expiry>:loco", password
    base64(HMAC-SHA1(secret, username)))."""
    username = f"{int((time.time() if now is None else now) + ttl)}:loco"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def with_turn_credentials(config: dict, secret: str | None, ttl: int) -> dict:
    """``webrtc.json`` as handed to a client: TURN servers listed without credentials get fresh ones."""
    if not secret or not isinstance(config.get("iceServers"), list):
        return config
    servers = []
    for server in config["iceServers"]:
        urls = server.get("urls") if isinstance(server, dict) else None
        urls = [urls] if isinstance(urls, str) else urls or []
        if any(str(u).startswith(("turn:", "turns:")) for u in urls) and "username" not in server:
            username, credential = turn_credentials(secret, ttl)
            server = {**server, "username": username, "credential": credential}
        servers.append(server)
    return {**config, "iceServers": servers}


def pin_host_addresses(addresses: list[str]) -> None:
    """Make aiortc offer host candidates on exactly these addresses (aioice otherwise takes every
    interface's but loopback): for a pod's one IP, or loopback-only tests."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [
        a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
    ]


class Gateway:
    def __init__(
        self,
        instances_path: Path,
        webrtc_path: Path | None = None,
        settings: GuestSettings | None = None,
        token: str | None = None,
        focus_url: str | None = None,
        web_root: Path | None = None,
        turn_secret: str | None = None,
        turn_ttl: int = 3600,
    ):
        self.instances_path = instances_path
        self.config_dir = instances_path.parent
        self.webrtc_path = webrtc_path or self.config_dir / "webrtc.json"
        self.settings = settings or GuestSettings()
        self.token = token
        self.focus_url = focus_url.rstrip("/") if focus_url else None
        self.web_root = web_root
        self.turn_secret, self.turn_ttl = turn_secret, turn_ttl
        self.instances: list[dict] = []
        self.guests: dict[str, Guest] = {}
        self.viewers: set[Viewer] = set()
        self.focus: list[str] = []
        self.focus_connected = False
        self.responses: dict[int, int] = {}
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="encode")
        self._tasks: list[asyncio.Task] = []
        self._http: aiohttp.ClientSession | None = None

    # -- setup -------------------------------------------------------------------------------------

    def load(self) -> None:
        """Read instances.json: one guest per entry with a vncUrl (re-read on start only)."""
        entries = read_json(self.instances_path, "instances file")
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("id") for e in entries):
            raise LocoError(f"instances file {self.instances_path} must be a list of objects with an 'id'")
        self.instances = entries
        for entry in entries:
            host, port = vnc_address(entry)
            self.guests[entry["id"]] = Guest(entry["id"], host, port, self.settings, self.executor)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._edge])
        app.router.add_post("/stream/{id}/offer", self.offer)
        app.router.add_get("/signal", self.signal)
        app.router.add_get("/api/instances", self.get_instances)
        app.router.add_get("/api/config/webrtc", self.get_webrtc)
        app.router.add_get("/api/config/hotkeys", self.get_hotkeys)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        if self.focus_url:
            app.router.add_route("*", "/api/active{rest:(/.*)?}", self.focus_api)
            app.router.add_get("/active", self.focus_socket)
        if self.web_root:
            app.router.add_get("/", self.index)
            app.router.add_get("/vr", self.vr_scene)
            app.router.add_static("/", self.web_root, show_index=False)
        else:
            app.router.add_get("/", self.no_web_client)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _start(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for guest in self.guests.values():
            guest.on_change = lambda guest=guest: self._guest_changed(guest)
            guest.start()
        if self.focus_url:
            self._tasks.append(asyncio.create_task(self._follow_focus(), name="focus follower"))

    async def _shutdown(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(viewer.close() for viewer in list(self.viewers)), return_exceptions=True)
        await asyncio.gather(*(guest.stop() for guest in self.guests.values()))
        if self._http:
            await self._http.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _guest_changed(self, guest: Guest) -> None:
        for viewer in self.viewers:
            if viewer.guest is guest:
                viewer.send_state()

    # -- edge --------------------------------------------------------------------------------------

    @web.middleware
    async def _edge(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413
            if exc.status == 413:
                response = _error(413, f"request body over {MAX_BODY} bytes")
            else:
                response = _error(exc.status, exc.reason)
        self.responses[response.status] = self.responses.get(response.status, 0) + 1
        return response

    def is_player(self, token: str | None) -> bool:
        if self.token is None:
            return True
        return bool(token) and hmac.compare_digest(token.encode(), self.token.encode())

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        return credential.strip() if scheme.lower() == "bearer" and credential else None

    # -- streams -----------------------------------------------------------------------------------

    async def _viewer(self, instance_id: str, offer: dict, token: str | None) -> tuple[Viewer, dict]:
        guest = self.guests.get(instance_id)
        if guest is None:
            raise LookupError(f"unknown instance {instance_id!r} (known: {', '.join(self.guests) or 'none'})")
        if not isinstance(offer, dict) or not isinstance(offer.get("sdp"), str) or not offer["sdp"].strip():
            raise OfferError('expected {"sdp": "...", "type": "offer"}')
        if guest.viewers >= MAX_VIEWERS:
            raise OverflowError(f"{instance_id} already has {MAX_VIEWERS} viewers")
        viewer = Viewer(guest, self.is_player(token), self.settings.video.codec, self.viewers.discard)
        try:
            answer = await viewer.answer(offer["sdp"], offer.get("type", "offer"))
        except BaseException:
            await viewer.close()
            raise
        self.viewers.add(viewer)
        return viewer, {"sdp": answer.sdp, "type": answer.type, "player": viewer.player}

    async def offer(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "send the offer as application/json")
        try:
            body = await request.json()
        except ValueError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        token = self._bearer(request) or (body.get("token") if isinstance(body, dict) else None)
        try:
            _, answer = await self._viewer(request.match_info["id"], body, token)
        except LookupError as exc:
            return _error(404, str(exc))
        except OfferError as exc:
            return _error(400, str(exc))
        except OverflowError as exc:
            return _error(503, str(exc))
        return web.json_response(answer)

    async def signal(self, request: web.Request) -> web.WebSocketResponse:
        """Today's clients: register, then per target instance an offer and trickled candidates;
        answers carry ``from`` (the instance) so one socket can hold several streams."""
        ws = web.WebSocketResponse(heartbeat=SIGNAL_HEARTBEAT, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        client_id = secrets.token_hex(8)
        token = self._bearer(request) or request.query.get("token")
        viewers: dict[str, Viewer] = {}
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                    kind = data.get("type") if isinstance(data, dict) else None
                except ValueError:
                    kind, data = None, None
                if kind == "register":
                    token = data.get("token") or token
                    await ws.send_json({"type": "registered", "id": client_id})
                elif kind == "__ping":
                    await ws.send_json({"type": "__pong", "ts": data.get("ts")})
                elif kind == "signal":
                    await self._signal_message(ws, viewers, data, token)
                else:
                    await ws.send_json({"type": "error", "error": "unknown message (expected register, signal "
                                                                   "or __ping)"})
        finally:
            await asyncio.gather(*(viewer.close() for viewer in viewers.values()), return_exceptions=True)
        return ws

    async def _signal_message(self, ws, viewers: dict[str, Viewer], data: dict, token: str | None) -> None:
        target, payload = data.get("target"), data.get("data")
        if not isinstance(payload, dict):
            await ws.send_json({"type": "error", "from": target, "error": "signal data must be an object"})
            return
        try:
            if payload.get("type") == "offer":
                if target in viewers:
                    await viewers.pop(target).close()  # a new offer for the same guest replaces the stream
                viewer, answer = await self._viewer(target, payload, token)
                viewers[target] = viewer
                await ws.send_json({"type": "signal", "from": target,
                                    "data": {"type": answer["type"], "sdp": answer["sdp"]},
                                    "player": answer["player"]})
            elif "candidate" in payload:
                if target in viewers:
                    await viewers[target].add_candidate(payload)
            else:
                raise OfferError("signal data must be an offer or an ICE candidate")
        except (LookupError, OfferError, OverflowError) as exc:
            await ws.send_json({"type": "error", "from": target, "error": str(exc)})

    # -- config and state --------------------------------------------------------------------------

    async def get_instances(self, request: web.Request) -> web.Response:
        entries = []
        for entry in self.instances:
            guest = self.guests[entry["id"]]
            entries.append({**entry, "stream": {
                "state": guest.state, "width": guest.width, "height": guest.height, "viewers": guest.viewers,
                "focused": guest.focused, "error": guest.error or None,
            }})
        return web.json_response({"instances": entries})

    async def _config_file(self, path: Path, default):
        """The file's JSON (re-read each time: the chart's ConfigMap may change), ``default`` when missing."""
        try:
            return await asyncio.to_thread(read_json, path, "config file")
        except LocoError:
            if not path.exists():
                return default
            raise

    async def get_webrtc(self, request: web.Request) -> web.Response:
        try:
            config = await self._config_file(self.webrtc_path, {"iceServers": []})
        except LocoError as exc:
            return _error(500, str(exc))
        response = web.json_response(with_turn_credentials(config, self.turn_secret, self.turn_ttl))
        response.headers["Cache-Control"] = "no-store"  # credentials expire
        return response

    async def get_hotkeys(self, request: web.Request) -> web.Response:
        """hotkeys.json, validated, with the VR controllers' defaults when it has no ``vr`` section."""
        path = self.config_dir / "hotkeys.json"
        try:
            bindings = await self._config_file(path, {})
            schemas.validate(bindings, "hotkeys", f"hotkeys file {path}")
        except LocoError as exc:
            return _error(500, str(exc))
        return web.json_response({**bindings, "vr": bindings.get("vr", schemas.vr_defaults())})

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.web_root / "index.html")

    async def vr_scene(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.web_root / "vr.html")

    async def no_web_client(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="loco.lan streaming gateway: no web client here (build it: "
                            "cd web && npm ci && npm run build, or give --web-root); the streams are at "
                            "/stream/<id>/offer and /signal, the instances at /api/instances\n")

    # -- focus: followed for frame rates, passed through for pages ---------------------------------

    async def _follow_focus(self) -> None:
        failures = 0
        while True:
            try:
                async with self._http.ws_connect(f"{self.focus_url}/active", heartbeat=30, timeout=10) as ws:
                    failures = 0
                    self.focus_connected = True
                    async for message in ws:
                        if message.type == WSMsgType.TEXT:
                            self.apply_focus(json.loads(message.data).get("active", []))
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                if failures == 0:
                    log.warning("focus service %s: %s; following it again soon", self.focus_url, exc)
            self.focus_connected = False
            failures += 1
            await asyncio.sleep(min(FOCUS_RECONNECT_MAX, 0.25 * 2**failures) * random.uniform(0.8, 1.2))

    def apply_focus(self, active: list[str]) -> None:
        self.focus = [i for i in active if isinstance(i, str)]
        for instance_id, guest in self.guests.items():
            guest.set_focused(instance_id in self.focus)

    async def focus_api(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        try:
            async with self._http.request(request.method, f"{self.focus_url}{request.path}",
                                          data=await request.read(), headers=headers) as reply:
                return web.Response(body=await reply.read(), status=reply.status,
                                    content_type=reply.content_type)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return _error(502, f"focus service {self.focus_url} unreachable: {exc}")

    async def focus_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        try:
            async with self._http.ws_connect(f"{self.focus_url}/active", heartbeat=30) as upstream:
                async def down():
                    async for message in upstream:
                        if message.type == WSMsgType.TEXT:
                            await ws.send_str(message.data)
                    await ws.close()

                relay = asyncio.create_task(down())
                async for message in ws:
                    if message.type == WSMsgType.TEXT:
                        await upstream.send_str(message.data)
                relay.cancel()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("focus WebSocket relay ended: %s", exc)
        await ws.close()
        return ws

    # -- health and metrics ------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        live = sum(guest.state == "live" for guest in self.guests.values())
        return web.json_response({"status": "ok", "guests": len(self.guests), "live": live,
                                  "viewers": len(self.viewers), "focus": self.focus_connected})

    async def metrics(self, request: web.Request) -> web.Response:
        lines: list[str] = []
        for name, kind, help_text, value in GUEST_METRICS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f'{name}{{instance="{g.id}"}} {value(g):g}' for g in self.guests.values()]
        name = "loco_stream_http_responses_total"
        lines += [f"# HELP {name} HTTP responses by status code.", f"# TYPE {name} counter"]
        lines += [f'{name}{{code="{code}"}} {n}' for code, n in sorted(self.responses.items())]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


# Per guest: name, Prometheus type, help, value.
GUEST_METRICS = [
    ("loco_stream_viewers", "gauge", "Viewers of each guest.", lambda g: g.viewers),
    ("loco_stream_live", "gauge", "1 while the guest's screen is being streamed.", lambda g: g.state == "live"),
    ("loco_stream_focused", "gauge", "1 while the guest runs at the focused frame rate.", lambda g: g.focused),
    ("loco_stream_frames_encoded_total", "counter", "Video frames encoded (once for all viewers).",
     lambda g: g.counters.frames_encoded),
    ("loco_stream_keyframes_total", "counter", "Keyframes encoded.", lambda g: g.counters.keyframes),
    ("loco_stream_frames_sent_total", "counter", "Video frames handed to viewers, all viewers summed.",
     lambda g: g.video.sent_packets),
    ("loco_stream_encode_seconds_total", "counter", "Time spent converting and encoding video.",
     lambda g: g.counters.encode_seconds),
    ("loco_stream_encoded_bytes_total", "counter", "Bytes of encoded video.", lambda g: g.counters.bytes_encoded),
    ("loco_stream_sent_bytes_total", "counter", "Bytes of video handed to viewers, all viewers summed.",
     lambda g: g.video.sent_bytes),
    ("loco_stream_audio_packets_total", "counter", "Opus packets encoded.", lambda g: g.counters.audio_packets),
    ("loco_stream_reconnects_total", "counter", "Times the guest's VNC session was dialled again.",
     lambda g: g.counters.reconnects),
    ("loco_stream_input_events_total", "counter", "Input events passed to the guest.",
     lambda g: g.counters.input_events),
]


async def serve(gateway: Gateway, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM."""
    await serve_until_stopped(gateway.app(), host, port, "streaming gateway", shutdown_timeout=5.0)
