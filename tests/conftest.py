"""Fixtures shared by every test: the project's binaries on PATH and, for
tests marked ``cluster``, one real local control plane per session."""

import os
import subprocess
from pathlib import Path

import pytest

from loco_lan.cluster.local import LocalCluster
from loco_lan.cluster.tools import Toolbox

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
os.environ["PATH"] = f"{Toolbox().bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory) -> LocalCluster:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok (3 nodes), started for this session."""
    cluster = LocalCluster("pytest", state_root=tmp_path_factory.mktemp("clusters"), nodes=3)
    cluster.up(timeout=180)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def kubectl(local_cluster):
    """Run the pinned kubectl against the session cluster; returns the CompletedProcess."""

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [Toolbox().binary("kubectl"), "--kubeconfig", str(local_cluster.kubeconfig), *args],
            input=input, capture_output=True, check=check, timeout=120,
        )

    return run
