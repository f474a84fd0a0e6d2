"""Focus fan-out: one change -> 1000 WebSocket clients, against a plain aiohttp broadcast loop.

Both servers run as their own process on loopback. The 1000 clients live in a
third process as raw sockets under one epoll loop. Latency is measured from just
before the POST is sent to the moment the kernel queued the matching message on
each client's socket (``SO_TIMESTAMPNS`` receive timestamps, CLOCK_REALTIME, shared
by the processes), so the clients' own pace of reading does not count: the
figures are the servers'. For loco they include request parsing, auth,
validation and the fan-out (the fsync'd save of active.json follows the
broadcast). The peer ("plain aiohttp broadcast") is the textbook loop a small
aiohttp app writes: POST body -> ``await ws.send_str(body)`` for every socket,
with no auth, no validation and no persistence.

    python bench/bench_focus_fanout.py [--clients 1000] [--changes 50] [--seconds 3]
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import resource
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"

PEER_SERVER = r"""
import sys
from aiohttp import web

clients = set()

async def active(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    clients.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        clients.discard(ws)
    return ws

async def post(request):
    body = await request.text()
    for ws in list(clients):
        await ws.send_str(body)
    return web.json_response({"ok": True})

app = web.Application()
app.router.add_get("/active", active)
app.router.add_post("/api/active", post)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), backlog=2048, print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # up, just no such page
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server {url} did not come up")


SEQ = re.compile(rb'"seq": ?(\d+)')
# <asm-generic/socket.h>: receive timestamps as struct timespec; not exported by Python's socket module.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")


def handshake(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /active HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, _, rest = answer.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"WebSocket handshake refused: {head[:80]!r}")
    sock.setblocking(False)
    return sock, rest


def frames(buffer: bytearray):
    """Pop complete server frames (unmasked) off ``buffer``: (opcode, payload)."""
    while len(buffer) >= 2:
        opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < offset + length:
            return
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        yield opcode, payload


def fleet(port: int, count: int, pipe) -> None:
    """Child process: ``count`` WebSocket clients; tells the parent when everyone has a seq it asks about."""
    clients, buffers, arrivals = {}, {}, {}
    for _ in range(count):
        sock, rest = handshake(port)
        clients[sock.fileno()] = sock
        buffers[sock.fileno()] = bytearray(rest)
        arrivals[sock.fileno()] = {}
    poller = select.epoll()
    for fd in clients:
        poller.register(fd, select.EPOLLIN)
    poller.register(pipe.fileno(), select.EPOLLIN)
    pipe.send("ready")
    progress: dict[int, int] = {}
    target = None
    while True:
        for fd, _ in poller.poll():
            if fd == pipe.fileno():
                target = pipe.recv()
                if target is None:
                    pipe.send([list(a.items()) for a in arrivals.values()])
                    return
                if progress.get(target) == count:
                    pipe.send(target)
                continue
            data, ancillary, _, _ = clients[fd].recvmsg(1 << 20, socket.CMSG_SPACE(TIMESPEC.size))
            now = time.time_ns()
            for level, kind, value in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                    seconds, nanoseconds = TIMESPEC.unpack(value)
                    now = seconds * 1_000_000_000 + nanoseconds
            buffer = buffers[fd]
            buffer += data
            for opcode, payload in frames(buffer):
                if opcode == 0x9:  # ping: answer with a (masked, zero-key) pong
                    clients[fd].sendall(bytes([0x8A, 0x80 | len(payload), 0, 0, 0, 0]) + payload)
                match = SEQ.search(payload) if opcode == 0x1 else None
                if match:
                    seq = int(match.group(1))
                    arrivals[fd][seq] = now
                    progress[seq] = progress.get(seq, 0) + 1
                    if seq == target and progress[seq] == count:
                        pipe.send(seq)


def run(port: int, clients: int, changes: int, seconds: float, ours: bool) -> dict:
    parent, child = multiprocessing.Pipe()
    worker = multiprocessing.Process(target=fleet, args=(port, clients, child), daemon=True)
    worker.start()
    if parent.recv() != "ready":
        raise SystemExit("client fleet failed")
    time.sleep(0.5)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    seq = 0

    def change() -> int:
        nonlocal seq
        seq += 1
        body = {"ids": [f"instance-{seq % 2}"]} if ours else {"ids": [f"instance-{seq % 2}"], "seq": seq}
        conn.request("POST", "/api/active", json.dumps(body), headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise SystemExit(f"POST refused: {answer}")
        if ours:
            seq = answer["seq"]
        return seq

    for _ in range(5):  # warm-up, not measured
        parent.send(change())
        parent.recv()
    sent = {}
    for _ in range(changes):  # latency: one change at a time, everyone served before the next
        start = time.time_ns()
        mine = change()
        sent[mine] = start
        parent.send(mine)
        parent.recv()
    first, start = seq + 1, time.perf_counter()
    while time.perf_counter() - start < seconds:  # throughput: back to back from one writer
        change()
    parent.send(seq)
    parent.recv()
    elapsed = time.perf_counter() - start
    parent.send(None)
    arrivals = [dict(a) for a in parent.recv()]
    worker.join(timeout=30)
    conn.close()
    return {
        "latencies": [(a[s] - t) / 1e9 for a in arrivals for s, t in sent.items()],
        "changes": seq - first + 1,
        "elapsed": elapsed,
        "missing": sum(1 for a in arrivals for s in range(first, seq + 1) if s not in a),
    }


def summary(runs: list[dict], clients: int) -> dict:
    latencies = sorted(x for r in runs for x in r["latencies"])
    changes, elapsed = sum(r["changes"] for r in runs), sum(r["elapsed"] for r in runs)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "changes_per_s": changes / elapsed,
        "deliveries_per_s": changes * clients / elapsed,
        "missing": sum(r["missing"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server, alternating who goes first")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # what the rest of the machine was doing before we started
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.clients + 256)), hard))

    workdir = Path(tempfile.mkdtemp(prefix="bench-focus-"))
    procs = []
    try:
        for name in ("instances.json", "hotkeys.json"):
            shutil.copy(REPO / "examples" / "focus" / name, workdir / name)
        (workdir / "token").write_text(TOKEN)
        ours_port, peer_port = free_port(), free_port()
        serve = [sys.executable, "-m", "loco_lan.cli", "focus", "serve", "--port", str(ours_port),
                 "--instances", str(workdir / "instances.json"), "--state-dir", str(workdir / "state"),
                 "--token-file", str(workdir / "token")]
        procs.append(subprocess.Popen(serve, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-c", PEER_SERVER, str(peer_port)]))
        wait_up(f"http://127.0.0.1:{ours_port}/healthz", procs[0])
        wait_up(f"http://127.0.0.1:{peer_port}/active", procs[1])
        runs = {True: [], False: []}
        for round_ in range(args.rounds):  # alternate the order: whoever goes first meets a colder machine
            for ours in (round_ % 2 == 1, round_ % 2 == 0):
                port = ours_port if ours else peer_port
                runs[ours].append(run(port, args.clients, args.changes, args.seconds, ours))
        ours, peer = summary(runs[True], args.clients), summary(runs[False], args.clients)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"focus fan-out: {args.clients} WebSocket clients on loopback, {args.rounds} rounds per server of "
        f"{args.changes} timed changes + {args.seconds:g} s sustained; latency = POST sent -> message "
        f"queued on the client's socket (kernel timestamp); load average before the run {load:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'changes/s':>10} {'msgs/s':>10} {'lost':>5}")
    for label, r in (("loco focus service", ours), ("peer: plain aiohttp broadcast loop", peer)):
        print(
            f"{label:36} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f} "
            f"{r['changes_per_s']:10.0f} {r['deliveries_per_s']:10.0f} {r['missing']:5d}"
        )
    print(
        f"ratio loco/peer: p99 latency x{ours['p99_ms'] / peer['p99_ms']:.2f}, "
        f"sustained changes/s x{ours['changes_per_s'] / peer['changes_per_s']:.2f}"
    )
    print(f"goal p99 < 20 ms: {'met' if ours['p99_ms'] < 20 else 'NOT met'} ({ours['p99_ms']:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
