"""playbooks/live.yml: supervised port-forwards reach every emulator pod, and
instances.json is rewritten with the local URLs that now answer."""

import json
import socket
import socketserver
import threading
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


class Banner(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"RFB 003.008\n")


class Health(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1024)
        body = b'{"status": "running"}'
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def serve(handler):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def retry(action, seconds=30.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_live_access_forwards_every_emulator_and_rewrites_instances(sandbox, live_ports):
    vnc, health = serve(Banner), serve(Health)
    forward = json.dumps({"5901": f"127.0.0.1:{vnc.server_address[1]}",
                          "8080": f"127.0.0.1:{health.server_address[1]}"})
    config = sandbox.root / "config"
    vnc_base, health_base, ports = live_ports
    common = ("-e", f"loco_config_dir={config}", "-e", "loco_local_cluster_name=live", "-e", "loco_replicas=2",
              "-e", "loco_demo_guest=screen",  # no guest runs here: the quickest disk to build
              "-e", json.dumps({"loco_chart_values": {"emulator": {"podAnnotations": {
                  "loco.lan/port-forward": forward}}}}))
    # Live access is this test's, on ports of its own: a LAN the README's bootstrap left running has the defaults.
    boot = sandbox("bootstrap.yml", "inventories/local", *common, "-e", '{"loco_live_access": false}')
    assert boot.returncode == 0, boot.output[-3000:]
    try:
        written = (config / "instances.json").read_text()
        with socket.create_server(("127.0.0.1", health_base + 1)):
            taken = sandbox("live.yml", "inventories/local", *common, *ports)
        assert taken.returncode != 0
        assert f"127.0.0.1 port {health_base + 1} already in use" in taken.output, taken.output[-3000:]
        assert (config / "instances.json").read_text() == written

        live = sandbox("live.yml", "inventories/local", *common, *ports)
        assert live.returncode == 0, live.output[-3000:]
        entries = json.loads((config / "instances.json").read_text())
        assert [e["vncUrl"] for e in entries] == [f"127.0.0.1:{vnc_base}", f"127.0.0.1:{vnc_base + 1}"]
        for entry in entries:
            host, port = entry["vncUrl"].split(":")

            def banner(host=host, port=port):
                with socket.create_connection((host, int(port)), timeout=5) as conn:
                    return conn.recv(12)

            assert retry(banner) == b"RFB 003.008\n"

            def status(url=entry["healthUrl"]):
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response)["status"]

            assert retry(status) == "running"
        again = sandbox("live.yml", "inventories/local", *common, *ports)
        assert again.recap()["local"]["changed"] == 0, again.output[-3000:]
    finally:
        down = sandbox("teardown.yml", "inventories/local", *common)
        assert down.returncode == 0, down.output[-3000:]
        vnc.shutdown()
        health.shutdown()
