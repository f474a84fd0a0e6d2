"""The brick's line to the focus service: a tiny keep-alive HTTP/1.1 client and the button loop.

Plain Python that runs on pybricks MicroPython and CPython alike (the twin in
``loco_lan.focus.ev3_twin`` imports this very file). A dropped socket is
reopened on the next request; a request the service could not take is kept
and retried every ``retry_ms`` until it goes through or a newer one replaces it.
"""

try:
    import usocket as socket
except ImportError:
    import socket
try:
    import ujson as json
except ImportError:
    import json


class Link:
    def __init__(self, host, port, token=None, timeout=3):
        self.host = host
        self.port = port
        self.token = token
        self.timeout = timeout
        self.sock = None

    @classmethod
    def from_url(cls, url, token=None):
        """Link to "http://host:port" (the brick only speaks plain HTTP on the LAN)."""
        if not url.startswith("http://"):
            raise ValueError("focus service URL must start with http://")
        address = url[len("http://"):].split("/")[0]
        port = 80
        if ":" in address:
            address, port = address.rsplit(":", 1)
            port = int(port)
        return cls(address, port, token)

    def close(self):
        if self.sock is not None:
            try:  # noqa: SIM105 - MicroPython on the brick has no contextlib
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, method, path, body=None):
        """Send one request and return (status, decoded JSON or None); OSError when the service is away."""
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                return self._exchange(method, path, body)
            except OSError:
                self.close()  # the kept-alive socket may simply have been dropped: reopen once
                if attempt:
                    raise

    def _connect(self):
        address = socket.getaddrinfo(self.host, self.port)[0][-1]
        sock = socket.socket()
        sock.settimeout(self.timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def _recv(self):
        chunk = self.sock.recv(1024)
        if not chunk:
            raise OSError("connection closed by the focus service")
        return chunk

    def _exchange(self, method, path, body):
        payload = b""
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, path, self.host, self.port)
        if body is not None:
            payload = json.dumps(body).encode()
            head += "Content-Type: application/json\r\n"
            if self.token:
                head += "Authorization: Bearer %s\r\n" % self.token
        head += "Content-Length: %d\r\n\r\n" % len(payload)
        data = head.encode() + payload
        while data:
            sent = self.sock.send(data)
            data = data[sent:]
        buf = b""
        while buf.find(b"\r\n\r\n") < 0:
            buf += self._recv()
        end = buf.find(b"\r\n\r\n")
        lines = buf[:end].decode().split("\r\n")
        rest = buf[end + 4:]
        status = int(lines[0].split(" ")[1])
        length = 0
        keep = True
        for line in lines[1:]:
            parts = line.split(":", 1)
            name = parts[0].strip().lower()
            value = parts[1].strip().lower() if len(parts) > 1 else ""
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                keep = False
        while len(rest) < length:
            rest += self._recv()
        if not keep:
            self.close()
        if not length:
            return status, None
        return status, json.loads(rest[:length].decode())


class FocusRemote:
    """Buttons in, focus requests out: main.py runs it on the brick, the twin in CPython."""

    def __init__(self, link, pad, retry_ms=1000):
        self.link = link
        self.pad = pad
        self.retry_ms = retry_ms
        self.status = "connecting"
        self.synced = False
        self.pending = None
        self._next_try = 0

    def _sync(self):
        status, listing = self.link.request("GET", "/api/instances")
        status2, current = self.link.request("GET", "/api/active")
        if status != 200 or status2 != 200:
            raise OSError("focus service answered %d/%d" % (status, status2))
        ids = [entry["id"] for entry in listing["instances"]]
        focused = current["active"][0] if current["active"] else None
        self.pad.set_ids(ids, focused)
        self.synced = True
        self.status = "focus: " + (", ".join(current["active"]) or "none")

    def _send(self, action):
        name, instance_id = action
        ids = [instance_id] if name == "focus" else []
        status, answer = self.link.request("POST", "/api/active", {"ids": ids})
        if status == 200:
            self.status = "focus: " + (", ".join(answer["active"]) or "none")
        else:  # refused (bad token, id gone): retrying will not help; re-read the ids instead
            self.status = "refused %d" % status
            self.synced = False

    def step(self, pressed, now_ms):
        """Feed the buttons down now; returns the pad's actions (for beeps and the screen)."""
        actions = self.pad.update(pressed, now_ms)
        for action in actions:
            if action[0] != "show":
                self.pending = action  # the latest wish wins over one still waiting
                self._next_try = now_ms
        if now_ms >= self._next_try and (self.pending is not None or not self.synced):
            try:
                if not self.synced:
                    self._sync()
                if self.pending is not None:
                    action, self.pending = self.pending, None
                    try:
                        self._send(action)
                    except OSError:
                        self.pending = action
                        raise
            except (OSError, ValueError, KeyError, TypeError):  # away, or not answering like a focus service
                self.status = "offline, retrying"
                self._next_try = now_ms + self.retry_ms
        return actions
