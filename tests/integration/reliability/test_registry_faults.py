"""Faults between a snapshot pull and its registry, on real parts: the local CNCF registry behind a
proxy that goes silent and then down in the middle of the blob, and ``loco snapshot pull`` as a
user runs it.  The pull must give up after its timeout and retries with one line, leave the image
already there untouched, keep what it downloaded, and the next run must resume and verify."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cuttingproxy import CuttingProxy
from regkit import fast_client, files_in, make_qcow2, sha256_file

from loco_lan.oci import Reference, push_artifact
from loco_lan.progress import human_bytes
from loco_lan.snapshot import CHECKPOINT_BYTES, RECORD_SUFFIX, partial_path

pytestmark = [pytest.mark.registry, pytest.mark.slow]
BIN = Path(sys.executable).parent
MIB = 1 << 20
TIMEOUT, RETRIES = 2, 2


def pull(reference: Reference, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "loco"), "snapshot", "pull", str(reference), str(dest), "--insecure-http",
                           "--timeout", str(TIMEOUT), "--retries", str(RETRIES), "--no-progress", "--json"],
                          capture_output=True, text=True, timeout=300, env=os.environ)


def test_registry_down_mid_pull(registry, tmp_path, row):
    """Registry goes silent, then down, in the middle of a snapshot pull (loco snapshot pull)"""
    client = fast_client()
    old, new = make_qcow2(tmp_path / "old.qcow2", 2, 0x11), make_qcow2(tmp_path / "new.qcow2", 96, None)
    digest = sha256_file(new)
    for disk, tag in ((old, "old"), (new, "new")):
        push_artifact(client, disk, Reference(registry.host, "reliability/win98", tag), sha256_file(disk))
    dest = tmp_path / "images" / "win98.qcow2"
    record = dest.with_name(dest.name + RECORD_SUFFIX)
    assert pull(Reference(registry.host, "reliability/win98", "old"), dest).returncode == 0
    before = dest.read_bytes(), record.read_bytes()

    # Past the first checkpoint the registry stops answering (a read timeout), then refuses connections.
    cut = CHECKPOINT_BYTES + 16 * MIB
    with CuttingProxy(registry.host, cut_after=cut, stall=True, down=True) as proxy:
        failed = pull(Reference(proxy.host, "reliability/win98", "new"), dest)
        assert proxy.cuts == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert last.startswith(f"loco: error: cannot reach registry {proxy.host}: ") and "refused" in last, last
    assert "Read timed out" in failed.stderr  # the silent registry, given up on after --timeout
    assert failed.stderr.count(f"retrying GET {proxy.host}") == RETRIES  # then --retries reconnects
    assert (dest.read_bytes(), record.read_bytes()) == before
    partial = partial_path(dest, digest)
    kept = json.loads(partial.with_name(partial.name + ".json").read_text())["bytes"]
    assert CHECKPOINT_BYTES <= kept < cut and f"the {human_bytes(kept)} saved so far are kept in {partial}" in last

    with CuttingProxy(registry.host) as back:  # the registry is back: the next run resumes
        again = pull(Reference(back.host, "reliability/win98", "new"), dest)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    size = new.stat().st_size
    assert (result["action"], result["resumed_from"], result["sha256"]) == ("pulled", kept, digest)
    assert size - kept < back.downstream < size - kept + 256 * 1024  # the rest of the blob, not all of it
    assert sha256_file(dest) == digest and json.loads(record.read_text())["sha256"] == digest
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]
    message = last.removeprefix("loco: error: ").replace(str(partial.parent) + "/", "")
    row.saw = f"after a {TIMEOUT} s read timeout and {RETRIES} retries: {message}"
    row.kept = (f"previous image + record byte for byte; {human_bytes(kept)} partial resumed next run "
                f"({human_bytes(back.downstream)} fetched of {human_bytes(size)}), sha256 verified")
