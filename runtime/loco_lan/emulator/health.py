"""The emulator's health endpoint.

- ``GET /health`` (also ``/healthz`` and ``/``): JSON about QEMU, VNC and the socket
  LAN (on instance 0: the hub's connected peers); 200 when QEMU runs, has been
  configured (VNC password set) and its VNC port answers with an RFB banner, else
  503 (readiness);
- on instance 0 of a socket LAN, ``GET /lan``: the hub's table (per port: the MACs learned behind
  it, frames from and to it, frames dropped), and ``POST /lan/probe`` (JSON ``subnet``, ``wait``):
  what the hub's probe port sees of the segment (:mod:`loco_lan.emulator.lanprobe`);
- ``GET /livez``: 200 while QEMU runs, or while the entrypoint waits for the LAN hub
  before starting it (liveness: a slow VNC or a late instance 0 must not restart the pod).
"""

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable

from aiohttp import web

from loco_lan.emulator.lanprobe import SUBNET

VNC_PROBE_TIMEOUT = 2.0
VNC_PROBE_CACHE = 1.0  # seconds a probe result is reused, so a busy prober cannot flood QEMU


async def vnc_banner(host: str, port: int, timeout: float = VNC_PROBE_TIMEOUT) -> str | None:
    """The server's ``RFB 003.00x`` banner, or None when nothing VNC answers."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                banner = await reader.readexactly(12)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    return banner.decode("latin-1").strip() if banner.startswith(b"RFB ") else None


class HealthServer:
    def __init__(
        self,
        qemu_alive: Callable[[], bool],
        vnc_host: str,
        vnc_port: int,
        info: dict,
        lan: Callable[[], dict] | None = None,
        hub=None,
    ):
        self._qemu_alive = qemu_alive
        self._vnc = (vnc_host, vnc_port)
        self._info = info
        self._lan = lan
        self._hub = hub
        self._probe: tuple[float, str | None] = (0.0, None)
        self.configured = False  # set once QEMU took its settings over QMP
        self.waiting: str | None = None  # what QEMU's start waits for, if anything
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        for path in ("/", "/health", "/healthz"):
            app.router.add_get(path, self._health)
        app.router.add_get("/livez", self._live)
        if self._hub is not None:
            app.router.add_get("/lan", self._lan_table)
            app.router.add_post("/lan/probe", self._lan_probe)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _banner(self) -> str | None:
        checked, banner = self._probe
        if time.monotonic() - checked > VNC_PROBE_CACHE:
            banner = await vnc_banner(*self._vnc)
            self._probe = (time.monotonic(), banner)
        return banner

    async def _health(self, _request: web.Request) -> web.Response:
        alive = self._qemu_alive()
        banner = await self._banner() if alive else None
        healthy = alive and self.configured and banner is not None
        body = {
            **self._info,
            "status": "running" if healthy else "starting" if alive else "waiting" if self.waiting else "stopped",
            "qemu": alive,
            "vnc": banner is not None,
            "vncBanner": banner,
        }
        if self.waiting:
            body["waitingFor"] = self.waiting
        if self._lan:
            body["lan"] = self._lan()
        return web.json_response(body, status=200 if healthy else 503)

    async def _live(self, _request: web.Request) -> web.Response:
        alive = self._qemu_alive()
        body = {"qemu": alive, **({"waitingFor": self.waiting} if self.waiting else {})}
        return web.json_response(body, status=200 if alive or self.waiting else 503)

    async def _lan_table(self, _request: web.Request) -> web.Response:
        return web.json_response(self._hub.status())

    async def _lan_probe(self, request: web.Request) -> web.Response:
        try:
            asked = await request.json() if request.can_read_body else {}
            subnet = str(ipaddress.IPv4Network(asked.get("subnet", SUBNET)))
            wait = float(asked.get("wait", 1.5))
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": f"bad probe request: {exc}"}, status=400)
        if not 0 < wait <= 10 or ipaddress.IPv4Network(subnet).num_addresses > 1024:
            return web.json_response({"error": "wait must be 0-10 s and the subnet at most 1024 addresses"}, status=400)
        return web.json_response(await self._hub.probe(subnet, wait))
