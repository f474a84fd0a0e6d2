# ruff: noqa: UP031 - plain enough for old MicroPython: %-formatting, no f-strings
"""A scripted stand-in for the socket module, plain enough for MicroPython: each recv() hands out the
next scripted chunk (b"" = the peer hung up), each send() takes at most 7 bytes (partial writes)."""

chunks = []
sent = []
refuse = []


def getaddrinfo(host, port):
    return [(2, 1, 0, "", (host, port))]


class socket:
    def settimeout(self, seconds):
        pass

    def connect(self, address):
        sent.append("connect %s:%d" % address)
        if refuse and refuse.pop(0):
            raise OSError("connection refused")

    def send(self, data):
        sent.append(bytes(data[:7]))
        return min(len(data), 7)

    def recv(self, size):
        return chunks.pop(0) if chunks else b""

    def close(self):
        sent.append("close")
