"""A pull killed midway is resumed by the next run from what it had safely written, and what an
earlier pull left that cannot be resumed is cleaned up.  Real registry, real kill."""

import json
import signal
import subprocess
import sys
import time

import pytest
from cuttingproxy import CuttingProxy
from regkit import files_in, make_qcow2, push_tar_image, sha256_file

from loco_lan import snapshot
from loco_lan.oci import Reference, push_artifact
from loco_lan.progress import human_bytes
from loco_lan.snapshot import CHECKPOINT_BYTES, RECORD_SUFFIX, partial_path

pytestmark = pytest.mark.registry
MIB = 1 << 20
PULL = """
import sys
from loco_lan import snapshot
from loco_lan.oci import Client
snapshot.pull(sys.argv[1], sys.argv[2], client=Client(plain_http=True, timeout=120, retries=0))
"""


@pytest.fixture
def big_qcow2(tmp_path):
    """A qcow2 of random data, bigger than one checkpoint: a kill past it keeps that much."""
    return make_qcow2(tmp_path / "big.qcow2", (CHECKPOINT_BYTES >> 20) + 32, pattern=None)


def wait_for(probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def checkpointed(partial) -> int:
    try:
        return json.loads(partial.with_name(partial.name + ".json").read_text())["bytes"]
    except (OSError, ValueError):
        return 0


def test_a_killed_pull_is_resumed_by_the_next_run(client, registry, ref, big_qcow2, tmp_path):
    target = ref()
    digest = sha256_file(big_qcow2)
    push_artifact(client, big_qcow2, target, digest)
    size = big_qcow2.stat().st_size
    dest = tmp_path / "images" / "win98.qcow2"
    partial = partial_path(dest, digest)
    # The registry goes quiet past the first checkpoint; the pull waiting on it is killed.
    with CuttingProxy(registry.host, cut_after=CHECKPOINT_BYTES + 16 * MIB, stall=True) as proxy:
        child = subprocess.Popen([sys.executable, "-c", PULL, str(Reference(proxy.host, target.repository,
                                                                              target.tag)), str(dest)])
        try:
            wait_for(lambda: proxy.cuts and checkpointed(partial) >= CHECKPOINT_BYTES)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    kept = checkpointed(partial)
    assert CHECKPOINT_BYTES <= kept < CHECKPOINT_BYTES + 16 * MIB and partial.stat().st_size >= kept

    with CuttingProxy(registry.host) as counting:
        result = snapshot.pull(Reference(counting.host, target.repository, target.tag), dest, client=client)
    assert (result.action, result.resumed_from) == ("pulled", kept)
    assert f"resumed from {human_bytes(kept)}" in result.summary()
    # What came back is the rest of the blob plus small change (manifests, headers).
    assert size - kept < counting.downstream < size - kept + 256 * 1024
    assert sha256_file(dest) == digest
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]


def test_a_kept_prefix_that_changed_on_disk_is_caught_and_pulled_again(client, ref, big_qcow2, tmp_path):
    target = ref()
    digest = sha256_file(big_qcow2)
    push_artifact(client, big_qcow2, target, digest)
    dest = tmp_path / "images" / "win98.qcow2"
    partial = partial_path(dest, digest)
    partial.parent.mkdir()
    partial.write_bytes(b"\0" * (2 * MIB))  # recorded as safely written, but not the blob's bytes
    partial.with_name(partial.name + ".json").write_text(json.dumps({"layer": digest, "bytes": 2 * MIB}))
    result = snapshot.pull(target, dest, client=client)
    assert result.action == "pulled" and sha256_file(dest) == digest
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]


def test_what_an_earlier_pull_left_and_cannot_resume_is_removed(client, ref, qcow2, tmp_path):
    dest = tmp_path / "images" / "win98.qcow2"
    dest.parent.mkdir()
    leftovers = [".win98.qcow2.0123456789abcdef.partial", ".win98.qcow2.0123456789abcdef.partial.json",
                 ".win98.qcow2.k1ll3d.tmp"]  # another digest's partial, a tar pull's temp file
    for name in leftovers:
        (dest.parent / name).write_bytes(b"x" * 4096)
    (dest.parent / "notes.txt").write_text("not ours")
    target = ref()
    push_tar_image(client, target, {"disk/win98.qcow2": qcow2().read_bytes()})
    assert snapshot.pull(target, dest, client=client).action == "pulled"
    assert files_in(dest.parent) == ["notes.txt", "win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]
