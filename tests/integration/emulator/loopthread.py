"""An asyncio server on its own event-loop thread, so synchronous test code, a ``loco``
subprocess or QEMU can talk to it (shared by the RFB screen server and the LAN hub)."""

import asyncio
import threading


class LoopThread:
    timeout = 10.0  # seconds a call into the loop may take

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)

    def do(self, function, *args):
        """``function(*args)`` on the loop's thread, where the server's state lives."""

        async def run():
            return function(*args)

        return self.call(run())

    def stop(self, shutdown) -> None:
        """Await ``shutdown`` (a coroutine) on the loop, then end the thread; once only."""
        if self.loop.is_closed():
            shutdown.close()
            return
        self.call(shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
