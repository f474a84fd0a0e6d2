"""Stopping by a stored pid never hits an unrelated process that got the pid later: the local
cluster's components and the live-access supervisor are checked by start time first.  Real
processes, no cluster: a pid file is made to point at a process that is not the one started."""

import json
import signal
import subprocess

import pytest

from loco_lan.cluster.local import LocalCluster
from loco_lan.liveaccess import LiveAccess, LiveConfig
from loco_lan.process import Started, pid_alive, start_time


@pytest.fixture
def bystander():
    """An unrelated process that now holds a pid a state file names (as after pid reuse)."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def reused(process) -> dict:
    """What a state file says of the process that had ``process``'s pid before: same pid, an
    earlier start."""
    return Started(process.pid, start_time(process.pid) - 1).dump()


def test_a_started_process_is_known_by_pid_and_start_time(bystander):
    started = Started.of(bystander.pid)
    assert started.alive() and Started.load(started.dump()) == started
    impostor = Started.load(reused(bystander))
    assert not impostor.alive()
    assert not impostor.signal(signal.SIGTERM) and bystander.poll() is None
    assert started.signal(signal.SIGTERM)
    assert bystander.wait(10) == -signal.SIGTERM
    assert not started.alive() and not started.signal(signal.SIGTERM)


def test_cluster_down_leaves_a_process_that_reused_a_components_pid(tmp_path, bystander):
    cluster = LocalCluster("stale", state_root=tmp_path)
    cluster.dir.mkdir(parents=True)
    cluster.state_file.write_text(json.dumps({"ports": {}, "pids": {"etcd": reused(bystander)}}))
    assert cluster.status()["components"] == {"etcd": False}
    cluster.down()
    assert bystander.poll() is None and pid_alive(bystander.pid)
    assert json.loads(cluster.state_file.read_text())["pids"] == {}


def test_live_access_stop_leaves_a_process_that_reused_the_supervisors_pid(tmp_path, bystander):
    live = LiveAccess(LiveConfig(namespace="loco"), tmp_path)
    live.state_file.write_text(json.dumps({"supervisor": reused(bystander), "key": live.config.key}))
    assert not live.running()
    assert live.stop() is False
    assert bystander.poll() is None
    assert not live.state_file.exists()
