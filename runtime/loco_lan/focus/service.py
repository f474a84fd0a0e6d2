"""The focus service over HTTP and WebSocket (aiohttp).

Routes (reads are open; writes need ``Authorization: Bearer <token>`` when a token is set):

- ``GET  /api/active``           the focus document:
  ``{"active": [...], "focus": [{"id", "index", "hotkey"}, ...], "seq", "mode", "maxActive"}``
- ``POST /api/active``           ``{"ids": [...]}`` replaces the focus (``[]`` clears it)
- ``POST /api/active/add``       ``{"id": "..."}`` or ``{"ids": [...]}``: focus more (single mode: replace)
- ``POST /api/active/remove``    ``{"id": "..."}`` or ``{"ids": [...]}``: unfocus these
- ``GET  /api/instances``        the ids focus may take, with their tile index and hotkey
- ``GET  /active``               WebSocket: the focus document now, then after every change
- ``GET  /healthz``, ``GET /metrics`` (Prometheus text)

Mutations answer with the focus document plus ``"changed"``. A change is
broadcast at once and answered once it is saved to ``active.json``; if the save
fails the previous focus comes back (broadcast as a new change) and the writer
gets a 503. An unchanged focus is neither saved nor broadcast.
"""

import asyncio
import contextlib
import hmac
import json
import logging
from collections import Counter

from aiohttp import WSMsgType, web

from loco_lan.aioweb import serve_until_stopped
from loco_lan.errors import LocoError
from loco_lan.focus.quota import QuotaApplier, plan
from loco_lan.focus.state import FocusRequestError, FocusState

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a focus request is a few ids; anything bigger is a mistake or an attack
SLOW_CLIENT_BYTES = 32 * 1024  # unsent backlog that marks a WebSocket client as stuck (about 150 events)


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked WebSocket text frame (RFC 6455, section 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + payload


def _error(status: int, message: str, **details) -> web.Response:
    response = web.json_response({"error": message, **details}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="loco-focus"'
    return response


class FocusService:
    def __init__(
        self,
        state: FocusState,
        token: str | None = None,
        cors_origins: list[str] | tuple[str, ...] = (),
        applier: QuotaApplier | None = None,
    ):
        self.state = state
        self.token = token
        self.cors_origins = set(cors_origins)
        self.applier = applier
        self.clients: dict[web.WebSocketResponse, asyncio.Transport] = {}
        self.responses: Counter = Counter()
        self.changes = 0
        self.dropped_clients = 0
        self._lock = asyncio.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._edge])
        app.router.add_get("/api/active", self.get_active)
        app.router.add_post("/api/active", self.set_active)
        app.router.add_post("/api/active/add", self.add_active)
        app.router.add_post("/api/active/remove", self.remove_active)
        app.router.add_get("/api/instances", self.get_instances)
        app.router.add_get("/active", self.websocket)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._start_quota)
        app.on_shutdown.append(self._shutdown)
        return app

    # -- edge: CORS, errors as JSON, response counting --------------------------------------------

    @web.middleware
    async def _edge(self, request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and ("*" in self.cors_origins or origin in self.cors_origins)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = web.Response(status=204 if allowed else 403)
            if allowed:
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Max-Age"] = "600"
        else:
            try:
                response = await handler(request)
            except FocusRequestError as exc:
                response = _error(exc.status, str(exc), **exc.details)
            except LocoError as exc:  # the state could not be saved; the previous focus stands
                log.error("%s", exc)
                response = _error(503, str(exc))
            except web.HTTPException as exc:  # aiohttp's own 404/405/413
                response = _error(exc.status, exc.reason)
        self.responses[response.status] += 1
        if allowed and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    def _authorize(self, request: web.Request) -> None:
        if self.token is None:
            return
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise FocusRequestError(
                "changing focus needs an 'Authorization: Bearer <token>' header", status=401
            )
        if not hmac.compare_digest(credential.strip().encode(), self.token.encode()):
            raise FocusRequestError("wrong focus token", status=401)

    async def _body(self, request: web.Request) -> dict:
        self._authorize(request)  # before reading: strangers do not get to upload anything
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise FocusRequestError(f"request body over {MAX_BODY} bytes", status=413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise FocusRequestError(f"request body over {MAX_BODY} bytes", status=413) from exc
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise FocusRequestError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise FocusRequestError("request body must be a JSON object")
        return body

    @staticmethod
    def _ids(body: dict, single_allowed: bool):
        if "ids" in body:
            return body["ids"]
        if single_allowed and "id" in body:
            return [body["id"]] if isinstance(body["id"], str) else body["id"]
        raise FocusRequestError(
            'request body must be {"ids": [...]}' + (' or {"id": "..."}' if single_allowed else "")
        )

    # -- handlers -------------------------------------------------------------------------------------

    async def get_active(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.document())

    async def get_instances(self, request: web.Request) -> web.Response:
        instances = [
            {"id": i.id, "index": i.index, "hotkey": i.hotkey} for i in self.state.catalog.instances.values()
        ]
        return web.json_response({"instances": instances})

    async def set_active(self, request: web.Request) -> web.Response:
        ids = self._ids(await self._body(request), single_allowed=False)
        return await self._mutate(lambda: self.state.plan_set(ids))

    async def add_active(self, request: web.Request) -> web.Response:
        ids = self._ids(await self._body(request), single_allowed=True)
        return await self._mutate(lambda: self.state.plan_add(ids))

    async def remove_active(self, request: web.Request) -> web.Response:
        ids = self._ids(await self._body(request), single_allowed=True)
        return await self._mutate(lambda: self.state.plan_remove(ids))

    async def _mutate(self, planner) -> web.Response:
        async with self._lock:  # one change at a time, planned against the state it will replace
            previous = self.state.active
            changed = self.state.change(planner())
            if changed:
                # Viewers hear first (their cursors must not wait for a disk); the writer's answer waits
                # for the save, so an acknowledged focus survives a crash.
                self._broadcast()
                try:
                    await asyncio.to_thread(self.state.save)
                except LocoError:
                    self.state.change(previous)  # back to what is on disk, announced as a new change
                    self._broadcast()
                    raise
                self.changes += 1
                self._want_quota()
        return web.json_response({**self.state.document(), "changed": changed})

    # -- live updates ---------------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        # No permessage-deflate: events are tiny, and compressing per client costs more than sending.
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096, compress=False)
        await ws.prepare(request)
        # Registered and sent the current state in one step, so no change can slip in between.
        self.clients[ws] = request.transport
        try:
            await ws.send_frame(json.dumps(self.state.document()).encode(), WSMsgType.TEXT)
            async for _ in ws:
                pass  # clients only listen; reading keeps pings and close frames flowing
        finally:
            self.clients.pop(ws, None)
        return ws

    def _broadcast(self) -> None:
        # Server frames are unmasked, so every client gets the very same bytes: frame once, then one
        # transport write each (a third of the per-client cost of going through aiohttp's writer).
        frame = text_frame(json.dumps(self.state.document()).encode())
        for ws, transport in list(self.clients.items()):
            if transport is None or transport.is_closing() or ws.closed:
                self.clients.pop(ws, None)
            elif transport.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                # A client that stopped reading would stall everyone; drop it, it reconnects to fresh state.
                log.warning("dropping a WebSocket client that stopped reading")
                self.dropped_clients += 1
                self.clients.pop(ws, None)
                transport.abort()
            else:
                transport.write(frame)  # never waits: a client this far behind was dropped above

    # -- quota -------------------------------------------------------------------------------------------

    def _want_quota(self) -> None:
        if self.applier is not None:
            self.applier.want(plan(self.state.catalog.instances, self.state.active))

    async def _start_quota(self, app: web.Application) -> None:
        if self.applier is not None:
            self._want_quota()
            self._quota_task = asyncio.create_task(self.applier.run(), name="focus-quota")

    async def _shutdown(self, app: web.Application) -> None:
        closing = [ws.close(code=1001, message=b"focus service stopping") for ws in list(self.clients)]
        with contextlib.suppress(TimeoutError):  # clients that do not answer the close are not waited for
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 3)
        if self.applier is not None:
            self._quota_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._quota_task
            await self.applier.release()

    # -- health and metrics ------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        if self.applier is None:
            return web.json_response({"status": "ok", "seq": self.state.seq, "quota": "none"})
        # "applied" only once every emulator has its share, as the backend verified it (a kubelet's
        # report, a cgroup file); otherwise each emulator still without it, and why.
        missing = self.applier.not_applied
        return web.json_response({"status": "ok", "seq": self.state.seq,
                                  "quota": "pending" if missing else "applied", "quota_not_applied": missing})

    async def metrics(self, request: web.Request) -> web.Response:
        lines = [
            "# HELP loco_focus_changes_total Focus changes accepted since start.",
            "# TYPE loco_focus_changes_total counter",
            f"loco_focus_changes_total {self.changes}",
            "# HELP loco_focus_active Instances focused now.",
            "# TYPE loco_focus_active gauge",
            f"loco_focus_active {len(self.state.active)}",
            "# HELP loco_focus_websocket_clients WebSocket clients connected now.",
            "# TYPE loco_focus_websocket_clients gauge",
            f"loco_focus_websocket_clients {len(self.clients)}",
            "# HELP loco_focus_websocket_dropped_total Clients dropped for not reading their updates.",
            "# TYPE loco_focus_websocket_dropped_total counter",
            f"loco_focus_websocket_dropped_total {self.dropped_clients}",
            "# HELP loco_focus_http_responses_total HTTP responses by status code.",
            "# TYPE loco_focus_http_responses_total counter",
        ]
        lines += [
            f'loco_focus_http_responses_total{{code="{c}"}} {n}' for c, n in sorted(self.responses.items())
        ]
        if self.applier is not None:
            lines += [
                "# HELP loco_focus_quota_passes_total Quota passes that changed at least one emulator.",
                "# TYPE loco_focus_quota_passes_total counter",
                f"loco_focus_quota_passes_total {self.applier.passes}",
                "# HELP loco_focus_quota_failures_total Emulators a quota pass failed to change (retried).",
                "# TYPE loco_focus_quota_failures_total counter",
                f"loco_focus_quota_failures_total {self.applier.failures}",
                "# HELP loco_focus_quota_pending 1 while the emulators do not yet match the focus.",
                "# TYPE loco_focus_quota_pending gauge",
                f"loco_focus_quota_pending {int(self.applier.pending)}",
            ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


async def serve(service: FocusService, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM, then close clients and release the quota backend."""
    # A refused upload is drained for at most a second (not aiohttp's 10) so a stop is never held up.
    await serve_until_stopped(service.app(), host, port, "focus service", backlog=1024, lingering_time=1.0,
                              shutdown_timeout=5.0)
