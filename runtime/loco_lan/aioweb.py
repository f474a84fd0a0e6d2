"""Serving an aiohttp application as the project's services do: listen (or fail with one clear
line), say where, run until SIGINT or SIGTERM, then clean up."""

import asyncio
import logging
import signal

from aiohttp import web

from loco_lan.errors import LocoError

log = logging.getLogger(__name__)


async def serve_until_stopped(app: web.Application, host: str, port: int, what: str, backlog: int = 128,
                              **runner_options) -> None:
    """``runner_options`` go to aiohttp's AppRunner (timeouts of its shutdown and lingering)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **runner_options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=backlog)
        try:
            await site.start()
        except OSError as exc:
            raise LocoError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        for address in runner.addresses:
            log.info("%s listening on http://%s:%s", what, *address[:2])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
