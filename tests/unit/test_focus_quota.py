"""Quota worker (coalescing, retries) and the cgroup file logic, with a fake backend and a fake cgroupfs."""

import asyncio
import os

import pytest

from loco_lan.errors import LocoError
from loco_lan.focus.quota import CgroupCpu, CgroupFs, QuotaApplier, plan

IDS = [f"instance-{i}" for i in range(4)]


class SlowBackend:
    """Records every pass; each takes a while, like a real API round trip."""

    name = "fake"

    def __init__(self, fail: dict | None = None):
        self.passes: list[dict] = []
        self.fail = fail or {}

    async def apply(self, changes):
        self.passes.append(dict(changes))
        await asyncio.sleep(0.02)
        return {i: self.fail[i] for i in changes if i in self.fail}

    async def release(self, ids):
        self.released = list(ids)


def test_plan_nothing_focused_means_everyone_runs():
    assert plan(IDS[:2], []) == {"instance-0": True, "instance-1": True}
    assert plan(IDS[:3], ["instance-1"]) == {"instance-0": False, "instance-1": True, "instance-2": False}


async def _settle(applier):
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not applier.pending:
            return


def test_burst_of_changes_applies_only_the_last_state():
    async def scenario():
        backend = SlowBackend()
        applier = QuotaApplier(backend, settle=0.01)
        task = asyncio.create_task(applier.run())
        applier.want(plan(IDS, ["instance-0"]))
        await _settle(applier)
        for target in ["instance-1", "instance-2", "instance-3", "instance-2", "instance-1"] * 20:
            applier.want(plan(IDS, [target]))
            await asyncio.sleep(0.001)
        await _settle(applier)
        task.cancel()
        return backend, applier

    backend, applier = asyncio.run(scenario())
    assert applier.applied == plan(IDS, ["instance-1"])  # final state, not lost
    assert len(backend.passes) <= 10  # 100 changes collapsed into a handful of passes
    first = backend.passes[0]
    assert first == {"instance-1": False, "instance-2": False, "instance-3": False, "instance-0": True}
    for changes in backend.passes:  # demotions always come before promotions
        flags = list(changes.values())
        assert flags == sorted(flags)


def test_unchanged_emulators_are_not_touched_again():
    async def scenario():
        backend = SlowBackend()
        applier = QuotaApplier(backend, settle=0.0)
        task = asyncio.create_task(applier.run())
        applier.want(plan(IDS, ["instance-0"]))
        await _settle(applier)
        applier.want(plan(IDS, ["instance-0", "instance-1"]))
        await _settle(applier)
        task.cancel()
        return backend

    backend = asyncio.run(scenario())
    assert backend.passes[1] == {"instance-1": True}


def test_failures_are_retried_until_applied(caplog):
    async def scenario():
        backend = SlowBackend(fail={"instance-2": "pod not found"})
        applier = QuotaApplier(backend, settle=0.0, retry_min=0.01, retry_max=0.02)
        task = asyncio.create_task(applier.run())
        applier.want(plan(IDS, ["instance-2"]))
        while len(backend.passes) < 4:
            await asyncio.sleep(0.01)
        assert applier.pending and applier.failures >= 3
        backend.fail.clear()
        await _settle(applier)
        task.cancel()
        return backend, applier

    backend, applier = asyncio.run(scenario())
    assert applier.applied["instance-2"] is True
    assert all(p == {"instance-2": True} for p in backend.passes[1:])
    assert caplog.text.count("pod not found") == 1  # said once, not on every retry


def test_cgroup_v2_files(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    fs = CgroupFs.detect(root)
    assert (fs.version, fs.base) == (2, root / "loco-lan")
    assert (root / "cgroup.subtree_control").read_text() == "+cpu"
    pid_dir = tmp_path / "run"
    pid_dir.mkdir()
    (pid_dir / "instance-1.pid").write_text(f"{os.getpid()}\n")
    backend = CgroupCpu(fs, str(pid_dir / "{id}.pid"), 1.0, 0.25)
    failed = asyncio.run(backend.apply({"instance-1": False, "instance-2": True}))
    assert "instance-2" in failed and "pid file" in failed["instance-2"]
    group = root / "loco-lan" / "instance-1"
    assert (group / "cpu.max").read_text() == "25000 100000"
    assert (group / "cgroup.procs").read_text() == str(os.getpid())
    assert fs.read_cpus("instance-1") == 0.25
    asyncio.run(backend.release(["instance-1"]))
    assert fs.read_cpus("instance-1") is None


def test_cgroup_detect_says_why_not(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    with pytest.raises(LocoError, match="no cgroup cpu controller"):
        CgroupFs.detect(tmp_path)


def test_quiet_periods_reassert_everything():
    async def scenario():
        backend = SlowBackend()
        applier = QuotaApplier(backend, settle=0.0, resync=0.1)
        task = asyncio.create_task(applier.run())
        applier.want(plan(IDS[:2], ["instance-1"]))
        while len(backend.passes) < 3:
            await asyncio.sleep(0.02)
        task.cancel()
        return backend

    backend = asyncio.run(scenario())
    assert backend.passes[:3] == [{"instance-0": False, "instance-1": True}] * 3


def test_a_change_that_failed_is_applied_again_when_the_focus_flips_back():
    """A share asked for but not done (a kubelet still resizing) leaves the emulator in an unknown
    state: focusing it again must re-apply, not count on what it had before."""

    class Slow:
        name = "slow"

        def __init__(self):
            self.calls, self.fail = [], True

        async def apply(self, changes):
            self.calls.append(dict(changes))
            return {i: "waiting for the kubelet" for i, f in changes.items() if not f and self.fail}

        async def release(self, ids):
            pass

    async def scenario():
        backend = Slow()
        applier = QuotaApplier(backend, settle=0, retry_min=0.01, retry_max=0.01, resync=60)
        task = asyncio.create_task(applier.run())
        applier.want({"a": True})
        while applier.pending or not backend.calls:
            await asyncio.sleep(0.01)
        applier.want({"a": False})  # fails: asked, not applied
        while len(backend.calls) < 2:
            await asyncio.sleep(0.01)
        applier.want({"a": True})  # back: must be applied again
        while applier.pending:
            await asyncio.sleep(0.01)
        task.cancel()
        return backend.calls

    calls = asyncio.run(scenario())
    assert calls[0] == {"a": True} and {"a": False} in calls and calls[-1] == {"a": True}
