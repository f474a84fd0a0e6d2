"""Quota backends for real: QMP pause against running QEMUs, cgroup CPU caps on real processes."""

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loco_lan import qmp
from loco_lan.errors import LocoError
from loco_lan.focus.quota import CgroupFs

IDS = [f"instance-{i}" for i in range(4)]


def wait_for(predicate, what: str, timeout: float = 20):
    """Poll ``predicate`` until it holds (the quota worker is asynchronous by design)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def qemus(tmp_path):
    """One tiny QEMU (no machine, no display) per instance, each with a QMP socket ``<id>.qmp``."""
    procs = []
    for instance_id in IDS:
        sock = tmp_path / f"{instance_id}.qmp"
        procs.append(
            subprocess.Popen(
                [
                    "qemu-system-i386",
                    "-machine",
                    "none",
                    "-nodefaults",
                    "-display",
                    "none",
                    "-qmp",
                    f"unix:{sock},server=on,wait=off",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    for instance_id in IDS:
        wait_for((tmp_path / f"{instance_id}.qmp").exists, f"QMP socket of {instance_id}")
    yield tmp_path
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def statuses(qmp_dir: Path) -> dict[str, str]:
    async def query():
        answers = await asyncio.gather(*(qmp.run(str(qmp_dir / f"{i}.qmp"), "query-status") for i in IDS))
        return {i: a["status"] for i, a in zip(IDS, answers, strict=True)}

    return asyncio.run(query())


def expect(qmp_dir: Path, running: set[str]) -> None:
    wanted = {i: "running" if i in running else "paused" for i in IDS}
    wait_for(lambda: statuses(qmp_dir) == wanted, f"QEMU states {wanted}")


@pytest.mark.qemu
def test_pause_mode_stops_unfocused_guests(focus_service, qemus):
    service = focus_service("--mode", "multi", "--quota", "pause", "--qmp-socket", str(qemus / "{id}.qmp"))
    expect(qemus, set(IDS))  # nothing focused: nobody is paused
    service.post("/api/active", {"ids": ["instance-1"]})
    expect(qemus, {"instance-1"})
    service.post("/api/active/add", {"id": "instance-3"})
    expect(qemus, {"instance-1", "instance-3"})
    for target in IDS * 10:  # a burst: only where it ends matters
        service.post("/api/active", {"ids": [target]})
    service.post("/api/active", {"ids": ["instance-2"]})
    expect(qemus, {"instance-2"})
    assert service.stop() == 0
    assert statuses(qemus) == dict.fromkeys(IDS, "running")  # a stopped service leaves nobody frozen


def busy_process(pid_file: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def throttled(fs: CgroupFs, group: str) -> int:
    stat = dict(line.split() for line in (fs.base / group / "cpu.stat").read_text().splitlines())
    return int(stat["nr_throttled"])


@pytest.mark.slow
def test_cgroup_mode_caps_unfocused_processes(focus_service, tmp_path):
    try:
        fs = CgroupFs.detect()
    except LocoError as exc:
        pytest.skip(f"no writable cgroup cpu controller here: {exc}")
    procs = [busy_process(tmp_path / f"{i}.pid") for i in IDS[:2]]
    try:
        service = focus_service(
            "--mode",
            "single",
            "--quota",
            "cgroup",
            "--pid-file",
            str(tmp_path / "{id}.pid"),
            "--focused-cpu",
            "1",
            "--unfocused-cpu",
            "0.2",
        )
        service.post("/api/active", {"ids": ["instance-0"]})
        wait_for(lambda: _caps(fs) == {"instance-0": 1.0, "instance-1": 0.2}, "caps 1.0 / 0.2")
        for proc, instance_id in zip(procs, IDS, strict=False):
            assert f"/{fs.base.name}/{instance_id}" in Path(f"/proc/{proc.pid}/cgroup").read_text()
        before = throttled(fs, "instance-1")
        wait_for(lambda: throttled(fs, "instance-1") > before + 2, "the kernel throttling instance-1")
        service.post("/api/active", {"ids": ["instance-1"]})
        wait_for(lambda: _caps(fs) == {"instance-0": 0.2, "instance-1": 1.0}, "caps swapped")
        assert service.stop() == 0
        assert _caps(fs) == {"instance-0": None, "instance-1": None}  # uncapped on the way out
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for instance_id in IDS:
            with contextlib.suppress(OSError):
                (fs.base / instance_id).rmdir()


def _caps(fs: CgroupFs) -> dict:
    caps = {}
    for instance_id in IDS[:2]:
        try:
            caps[instance_id] = fs.read_cpus(instance_id)
        except OSError:
            caps[instance_id] = "missing"
    return caps
