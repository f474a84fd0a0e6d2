"""The part of ``loco netcheck`` that runs on each checked host.

The engine sends this file's source on stdin (``python3 - MODE PARAMS_JSON``),
so it needs only the standard library on the host and no copy step; it prints
one JSON object.  Modes:

- ``sweep``: ping addresses in parallel (this is also the ARP probe: the
  kernel broadcasts an ARP request for every IPv4 peer it pings);
- ``listen``: serve TCP and UDP ports, answering each probe that carries the
  run's token with this host's name, until every expected probe came or the
  lifetime ends;
- ``probe``: reach every target's ports, retrying until the deadline (the
  target's listener may start a moment later), and say who answered.
"""

import json
import math
import socket
import subprocess
import sys
import threading
import time

MAGIC = "LOCO-NETCHECK"


def _parallel(function, items):
    threads = [threading.Thread(target=function, args=item, daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def sweep(params):
    timeout = max(1, math.ceil(params["timeout"]))
    results = [None] * len(params["targets"])

    def ping(index, addr):
        argv = ["ping", "-n", "-c", "1", "-W", str(timeout)]
        if ":" in addr:
            # A link-local address means nothing without the interface it lives on.
            target = addr + "%" + params["interface"] if addr.lower().startswith("fe80:") else addr
            argv += ["-6", target]
        else:
            argv += ["-4", "-I", params["source"], addr] if params.get("source") else ["-4", addr]
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout + 5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            results[index] = {"addr": addr, "ok": False, "detail": f"ping: {exc}"}
            return
        output = proc.stdout.decode("utf-8", "replace")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if proc.returncode == 0:
            detail = ""
        elif " 0 received" in output or " 0 packets received" in output:
            detail = "no reply"
        else:
            detail = lines[-1] if lines else f"ping exited {proc.returncode}"
        results[index] = {"addr": addr, "ok": proc.returncode == 0, "detail": detail}

    _parallel(ping, list(enumerate(params["targets"])))
    return {"pings": results}


def _message(token, name):
    return f"{MAGIC} {token} {name}\n".encode()


def _sender(data, token):
    """The name in a well-formed message of this run, else None."""
    parts = data.decode("utf-8", "replace").split()
    return parts[2] if len(parts) == 3 and parts[0] == MAGIC and parts[1] == token else None


def _read_line(sock):
    data = b""
    while not data.endswith(b"\n") and len(data) < 512:
        chunk = sock.recv(512)
        if not chunk:
            break
        data += chunk
    return data


def listen(params):
    token, reply = params["token"], _message(params["token"], params["name"])
    ports = [(proto, int(port)) for proto, port in params["ports"]]
    expected = {(source, proto, port) for source in params["sources"] for proto, port in ports}
    deadline = time.monotonic() + params["lifetime"]
    seen, errors, lock, done = {}, [], threading.Lock(), threading.Event()

    def note(source, proto, port, peer):
        with lock:
            seen.setdefault((source, proto, port), peer)
            if expected <= set(seen):
                done.set()

    sockets = []
    for addr in params["addrs"]:
        for proto, port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, port))
                if proto == "tcp":
                    sock.listen(64)
            except OSError as exc:
                sock.close()
                errors.append(f"{proto}/{port} on {addr}: {exc.strerror or exc}")
                continue
            sock.settimeout(0.2)
            sockets.append((sock, proto, port))

    def serve(sock, proto, port):
        while not done.is_set() and time.monotonic() < deadline:
            try:
                if proto == "udp":
                    data, peer = sock.recvfrom(512)
                    source = _sender(data, token)
                    if source:
                        sock.sendto(reply, peer)
                        note(source, proto, port, peer[0])
                    continue
                conn, peer = sock.accept()
                with conn:
                    conn.settimeout(1)
                    source = _sender(_read_line(conn), token)
                    if source:
                        conn.sendall(reply)
                        note(source, proto, port, peer[0])
            except OSError:  # the 0.2 s poll timeout, or a peer that went away mid-probe
                continue

    if not expected:
        done.set()
    try:
        _parallel(serve, sockets)
    finally:
        for sock, _, _ in sockets:
            sock.close()
    return {
        "errors": errors,
        "seen": [[source, proto, port, peer] for (source, proto, port), peer in sorted(seen.items())],
    }


def probe(params):
    token, message = params["token"], _message(params["token"], params["name"])
    source = (params["source"], 0) if params.get("source") else None
    deadline = time.monotonic() + params["timeout"]
    jobs = [(target, proto, int(port)) for target in params["targets"] for proto, port in params["ports"]]
    results = [None] * len(jobs)

    def attempt(addr, proto, port, wait):
        if proto == "tcp":
            with socket.create_connection((addr, port), timeout=wait, source_address=source) as sock:
                sock.sendall(message)
                return _read_line(sock)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            if source:
                sock.bind(source)
            sock.settimeout(wait)
            sock.connect((addr, port))
            sock.send(message)
            return sock.recv(512)

    def one(index, target, proto, port):
        result = {"target": target["name"], "addr": target["addr"], "proto": proto, "port": port,
                  "ok": False, "answered_by": "", "error": "not tried"}
        while time.monotonic() < deadline:
            wait = min(0.5 if proto == "udp" else 1.0, deadline - time.monotonic())
            try:
                answer = _sender(attempt(target["addr"], proto, port, max(wait, 0.05)), token)
                if answer:
                    result.update(ok=answer == target["name"], answered_by=answer,
                                  error="" if answer == target["name"] else f"answered by {answer}")
                    break
                result["error"] = "something else answers on this port"
            except TimeoutError:
                result["error"] = "no answer" if proto == "udp" else "timed out"
            except OSError as exc:
                result["error"] = (exc.strerror or str(exc)).lower()
            time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))
        results[index] = result

    _parallel(one, [(index,) + job for index, job in enumerate(jobs)])
    return {"results": results}


def main(argv):
    mode, params = argv[1], json.loads(argv[2])
    json.dump({"sweep": sweep, "listen": listen, "probe": probe}[mode](params), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
