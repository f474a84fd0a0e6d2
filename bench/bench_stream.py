"""Streaming: the gateway against the peers a user would pick instead, measured in the same run on
the same demo guests (QEMU, 1024x768) and the same headless Chromium:

- input-to-photon latency: a key sent from the page -> the guest flips its latency square -> the
  page shows the flip (WebRTC: requestVideoFrameCallback; noVNC through websockify, which encodes
  nothing and so is the floor: each animation frame), median and p95;
- fan-out: one guest in full-screen motion to 1, 4, 8 viewers, the gateway's CPU against a plain
  aiortc relay (aiortc's MediaRelay: one encoder per viewer);
- scale: several guests in full-screen motion, all focused, one viewer each: frames delivered per
  second to each page and the gateway's CPU; then the same guests idle;
- bandwidth: bytes per second of one stream in full-screen motion, against noVNC's on that motion.

    python bench/bench_stream.py [--presses 60] [--viewers 1,4,8] [--guests 4] [--seconds 10]

CPU is the process's user+system time over the measuring window, in % of one core.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))  # the guests, services and browser the tests run

from playwright.sync_api import sync_playwright  # noqa: E402
from streamstack import TOKEN, StreamStack, launch_chromium, wait_until  # noqa: E402

from loco_lan import demoguest  # noqa: E402
from loco_lan.netutil import free_port, wait_accepting  # noqa: E402
from loco_lan.process import cpu_seconds  # noqa: E402

HARNESS = REPO / "tests" / "integration" / "stream" / "harness"
PAGES = Path(__file__).parent / "pages"
NOVNC = REPO / "tools" / "novnc" / "node_modules" / "@novnc" / "novnc"
KEY_A = 0x61
F8, F10 = demoguest.KEYSYMS["F8"], demoguest.KEYSYMS["F10"]

# The peer for fan-out: what aiortc's own examples do to share one source with many viewers.
PEER_RELAY = r"""
import asyncio, sys
import av
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.contrib.media import MediaRelay
from loco_lan.rfb import RFBClient
from loco_lan.stream.gateway import pin_host_addresses

class GuestScreen(VideoStreamTrack):
    def __init__(self, vnc):
        super().__init__()
        self.vnc = vnc

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        # yuv420p once: aiortc's relay crashes handing rgb24 frames to several encoders (#767).
        frame = av.VideoFrame.from_ndarray(self.vnc.framebuffer.copy(), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame

async def main(vnc_port, port, web_root):
    pin_host_addresses(["127.0.0.1"])
    vnc = await RFBClient.connect("127.0.0.1", vnc_port)
    async def follow():
        async for _ in vnc.updates():
            pass
    asyncio.create_task(follow())
    relay, source, peers = MediaRelay(), GuestScreen(vnc), set()

    async def offer(request):
        body = await request.json()
        pc = RTCPeerConnection()
        peers.add(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        pc.addTrack(relay.subscribe(source, buffered=False))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "player": False})

    async def index(request):
        return web.FileResponse(web_root + "/index.html")

    app = web.Application()
    app.router.add_post("/stream/{id}/offer", offer)
    app.router.add_get("/", index)
    app.router.add_static("/", web_root)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
"""


def cpu_percent(pid: int, seconds: float, during=lambda: None) -> float:
    """CPU of ``pid`` over ``seconds`` (``during`` runs first, inside the window)."""
    start, began = cpu_seconds(pid), time.monotonic()
    during()
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - began)


def summary(latencies: list) -> tuple[float, float, int]:
    seen = sorted(v for v in latencies if v is not None)
    if not seen:
        return float("nan"), float("nan"), len(latencies)
    p95 = seen[min(len(seen) - 1, round(0.95 * (len(seen) - 1)))]
    return statistics.median(seen), p95, len(latencies) - len(seen)


def open_viewer(browser, url: str, key: str, instance: str, **options):
    page = browser.new_page()
    page.goto(url + "/")
    page.add_script_tag(path=str(PAGES / "probe.js"))
    page.evaluate("([k, i, o]) => harness.connect(k, i, o)", [key, instance, options])
    wait_until(lambda: page.evaluate("(k) => harness.info(k)", key)["frames"] >= 3, 60, f"{key} decoding")
    return page


def frames(page, key: str) -> int:
    return page.evaluate("(k) => harness.info(k)", key)["frames"]


def video_bytes(page, key: str) -> int:
    return page.evaluate("(k) => harness.inbound(k)", key)["video"]["bytesReceived"]


def focus(stack: StreamStack, ids: list[str]) -> None:
    request = urllib.request.Request(stack.focus.url + "/api/active", data=json.dumps({"ids": ids}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(request, timeout=10).read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--viewers", default="1,4,8", help="viewer counts for fan-out, comma separated")
    parser.add_argument("--guests", type=int, default=4, help="guests for the scale run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measuring window")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    if not (NOVNC / "core" / "rfb.js").is_file():
        print(f"noVNC is missing at {NOVNC}: run scripts/setup.sh", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    web = root / "web"
    shutil.copytree(HARNESS, web)
    novnc_root = root / "novnc"
    novnc_root.mkdir()
    shutil.copy(PAGES / "novnc.html", novnc_root / "index.html")
    shutil.copy(PAGES / "probe.js", novnc_root / "probe.js")
    for part in ("core", "vendor"):
        (novnc_root / part).symlink_to(NOVNC / part)
    disk = demoguest.make_disk(root / "demo.qcow2")
    stack = StreamStack(root, disk, count=max(args.guests, 1), web_root=web, mode="multi",
                        gateway_args=("--focused-fps", "30"))
    helpers: list[subprocess.Popen] = []
    results: dict = {}
    try:
        stack.start()
        gateway = stack.gateway.process.pid
        x, y, w, h = demoguest.latency_square(1024, 768)
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, "--autoplay-policy=no-user-gesture-required")

            # -- latency: ours, then noVNC on the same guest --------------------------------------
            focus(stack, ["instance-0"])
            page = open_viewer(browser, stack.gateway.url, "lat", "instance-0", token=TOKEN)
            ours = page.evaluate("([k, x, y, s, n]) => probe.webrtcLatency(k, x, y, s, n)",
                                 ["lat", x + w // 2, y + h // 2, KEY_A, args.presses])
            page.close()
            port = free_port()
            helpers.append(subprocess.Popen(
                [sys.executable, "-m", "websockify", "--web", str(novnc_root), f"127.0.0.1:{port}",
                 f"127.0.0.1:{stack.guests[0].vnc_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            assert not wait_accepting([port], "127.0.0.1", 20)
            novnc = browser.new_page()
            novnc.goto(f"http://127.0.0.1:{port}/")
            # Its module script may still be running at "load" (a third of the loads here).
            novnc.wait_for_function("() => window.novnc !== undefined", timeout=30000)
            novnc.evaluate("(url) => novnc.connect(url)", f"ws://127.0.0.1:{port}/")
            wait_until(lambda: novnc.evaluate("document.querySelector('#screen canvas')?.width") == 1024, 30,
                       "noVNC showing the guest")
            theirs = novnc.evaluate("([x, y, s, n]) => probe.novncLatency(x, y, s, n)",
                                    [x + w // 2, y + h // 2, KEY_A, args.presses])
            results["latency"] = (summary(ours), summary(theirs))

            # -- bandwidth on full-screen motion: noVNC (still connected), then ours ---------------
            stack.press(0, F10)
            before, began = novnc.evaluate("window.novncBytes"), time.monotonic()
            time.sleep(args.seconds)
            novnc_rate = (novnc.evaluate("window.novncBytes") - before) / (time.monotonic() - began)
            novnc.close()
            page = open_viewer(browser, stack.gateway.url, "bw", "instance-0")
            before, shown, began = video_bytes(page, "bw"), frames(page, "bw"), time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - began
            ours_rate, ours_fps = (video_bytes(page, "bw") - before) / elapsed, (frames(page, "bw") - shown) / elapsed
            page.close()
            results["bytes"] = (ours_rate, ours_fps, novnc_rate)

            # -- fan-out: ours, then the plain aiortc relay ----------------------------------------
            relay_port = free_port()
            helpers.append(subprocess.Popen([sys.executable, "-c", PEER_RELAY, str(stack.guests[0].vnc_port),
                                             str(relay_port), str(web)]))
            assert not wait_accepting([relay_port], "127.0.0.1", 30)
            fanout = {}
            for label, url, pid in (("ours", stack.gateway.url, gateway),
                                    ("relay", f"http://127.0.0.1:{relay_port}", helpers[-1].pid)):
                for count in counts:
                    pages = [open_viewer(browser, url, f"v{i}", "instance-0") for i in range(count)]
                    start = [frames(p, f"v{i}") for i, p in enumerate(pages)]
                    cpu = cpu_percent(pid, args.seconds)
                    fps = statistics.mean((frames(p, f"v{i}") - start[i]) / args.seconds for i, p in enumerate(pages))
                    fanout[label, count] = (cpu, fps)
                    for p in pages:
                        p.close()
            results["fanout"] = fanout
            stack.press(0, F10)

            # -- scale: every guest in full-screen motion, all focused; then idle -----------------
            guests = [f"instance-{i}" for i in range(args.guests)]
            focus(stack, guests)
            for i in range(args.guests):
                stack.press(i, F10)
            pages = [open_viewer(browser, stack.gateway.url, f"s{i}", guest) for i, guest in enumerate(guests)]
            start = [frames(p, f"s{i}") for i, p in enumerate(pages)]
            cpu = cpu_percent(gateway, args.seconds)
            delivered = [(frames(p, f"s{i}") - start[i]) / args.seconds for i, p in enumerate(pages)]
            for i in range(args.guests):
                stack.press(i, F10)
                stack.press(i, F8)  # the animation stops too: an idle desktop
            idle = cpu_percent(gateway, args.seconds)
            results["scale"] = (delivered, cpu, idle)
            browser.close()
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(10)
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)

    (ours_median, ours_p95, ours_lost), (novnc_median, novnc_p95, novnc_lost) = results["latency"]
    print(f"input-to-photon, {args.presses} key presses at 1024x768:")
    print(f"  ours (WebRTC)      median {ours_median:6.1f} ms  p95 {ours_p95:6.1f} ms  lost {ours_lost}")
    print(f"  noVNC + websockify median {novnc_median:6.1f} ms  p95 {novnc_p95:6.1f} ms  lost {novnc_lost}")
    print(f"  ratio {ours_median / novnc_median:.2f}x noVNC's median (goal <= 1.2x, and <= 60 ms)")
    ours_rate, ours_fps, novnc_rate = results["bytes"]
    print("bandwidth, one stream, full-screen motion:")
    print(f"  ours {ours_rate / 1024:8.1f} KiB/s at {ours_fps:.1f} fps;  noVNC {novnc_rate / 1024:8.1f} KiB/s")
    print(f"  ratio {ours_rate / max(novnc_rate, 1):.3f}x noVNC's bytes (goal <= 0.3x)")
    print("fan-out, one guest in full-screen motion (CPU % of one core, frames/s per viewer):")
    for label in ("ours", "relay"):
        row = "  ".join(f"{n} viewers {results['fanout'][label, n][0]:5.1f}% {results['fanout'][label, n][1]:4.1f} fps"
                        for n in counts)
        print(f"  {'ours' if label == 'ours' else 'aiortc relay':12s} {row}")
    most = counts[-1]
    for label in ("ours", "relay"):
        ratio = results["fanout"][label, most][0] / max(results["fanout"][label, counts[0]][0], 0.1)
        print(f"  {label}: CPU at {most} viewers = {ratio:.2f}x at {counts[0]}" + (" (goal <= 1.5x)" if label == "ours"
                                                                                   else ""))
    delivered, cpu, idle = results["scale"]
    print(f"scale, {args.guests} guests in full-screen motion, all focused, one viewer each:")
    print(f"  frames/s delivered: {', '.join(f'{v:.1f}' for v in delivered)} (goal >= 20 each); gateway CPU {cpu:.1f}%")
    print(f"  the same guests idle: gateway CPU {idle:.1f}%")
    print("goal: latency median <= 60 ms and <= 1.2x noVNC; fan-out <= 1.5x; >= 20 fps; bytes <= 0.3x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
