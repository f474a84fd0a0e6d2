"""A browser that may only relay (iceTransportPolicy "relay") streams through a real coturn on
loopback, with the short-lived credentials the gateway derives from coturn's auth secret."""

import subprocess

import pytest
from streamstack import StreamStack
from test_gateway import connect, wait_frames

from loco_lan.netutil import free_port, wait_accepting

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
SECRET = "turn-secret-for-tests"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    root = tmp_path_factory.mktemp("coturn")
    port, relay = free_port(), free_port()
    log = root / "turnserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([
            "turnserver", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint", "--simple-log",
            "--log-file=stdout", f"--pidfile={root / 'turnserver.pid'}", "--listening-ip=127.0.0.1",
            f"--listening-port={port}", "--relay-ip=127.0.0.1", f"--min-port={relay}", f"--max-port={relay + 20}",
            "--realm=loco.lan", "--use-auth-secret", f"--static-auth-secret={SECRET}",
            "--allow-loopback-peers",  # the gateway's candidates are on loopback here
        ], stdout=out, stderr=subprocess.STDOUT)
    assert not wait_accepting([port], "127.0.0.1", 20, alive=lambda: process.poll() is None), log.read_text()
    yield port, log
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, harness, coturn):
    root = tmp_path_factory.mktemp("turnstack")
    (root / "turn-secret").write_text(SECRET)
    servers = ({"urls": [f"turn:127.0.0.1:{coturn[0]}?transport=udp"]},)
    stack = StreamStack(root, demo_disk, count=1, web_root=harness, ice_servers=servers,
                        gateway_args=("--turn-secret-file", str(root / "turn-secret")))
    try:
        yield stack.start()
    finally:
        stack.stop()


def test_a_relay_only_browser_streams_through_coturn(page, stack, coturn):
    config = page.evaluate("fetch('/api/config/webrtc').then(r => r.json())")
    server = config["iceServers"][0]
    assert server["username"].endswith(":loco") and server["credential"]  # minted for this client
    connect(page, "relayed", "instance-0", iceServers=config["iceServers"], relay=True)
    wait_frames(page, "relayed", 10)
    stats = page.evaluate("harness.inbound('relayed')")
    assert stats["local"][stats["pair"]] == "relay"
    assert SECRET not in coturn[1].read_text()
