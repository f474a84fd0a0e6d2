# ruff: noqa: UP031 - plain enough for old MicroPython: %-formatting, no f-strings
"""The brick's code against a scripted service; prints one line per step, identical on any Python."""

import usocket
from focuslink import FocusRemote, Link
from focuspad import FocusPad


def answer(body, extra=""):
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), extra, body)
    ).encode()


def requests():
    text = b"".join(s for s in usocket.sent if not isinstance(s, str)).decode()
    events = [s for s in usocket.sent if isinstance(s, str)]
    usocket.sent[:] = []
    return [
        line for line in text.split("\r\n") if line.startswith(("GET", "POST", "Authorization", "{"))
    ], events


listing = answer('{"instances": [{"id": "instance-0"}, {"id": "instance-1"}, {"id": "instance-2"}]}')
usocket.chunks[:] = [listing[:20], listing[20:], answer('{"active": ["instance-1"], "seq": 4}')]
remote = FocusRemote(Link.from_url("http://focus.lan:8090", "s3cret"), FocusPad(), retry_ms=500)
print(remote.step([], 0), remote.pad.shown(), remote.status, requests())

usocket.chunks[:] = [answer('{"active": ["instance-2"], "seq": 5}')]
print(remote.step(["right"], 20), remote.step([], 40))
print(remote.step(["center"], 60), remote.step([], 120), remote.status, requests())

# The service restarted: the kept-alive socket is dead and the service is still down.
usocket.chunks[:] = [b""]
usocket.refuse[:] = [True]
print(remote.step(["center"], 200), remote.step([], 260))
print(remote.status, requests())
usocket.chunks[:] = [answer('{"active": ["instance-2"], "seq": 6}', "Connection: close\r\n")]
print(remote.step([], 600), remote.status)  # not due yet: retries come every retry_ms
print(remote.step([], 800), remote.status, requests())

usocket.chunks[:] = [answer('{"active": [], "seq": 7}')]
for t in range(1000, 2000, 20):
    actions = remote.step(["center"], t)
    if actions:
        print(t, actions, remote.status)
print(remote.step([], 2000), remote.status, requests())
