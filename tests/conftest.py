"""Fixtures shared by every test: the project's binaries on PATH and, for tests marked
``cluster``, one real local control plane per session (``registry``: one real registry). Under
``CI`` a skip fails the run unless it is on ``ALLOWED_SKIPS``: a missing part must not pass unseen.

The reliability table: a test that injects a fault (most live in tests/integration/reliability)
takes the ``row`` fixture; its docstring's first line names the fault, and it sets ``row.saw``
and ``row.kept`` once its assertions have passed (a failed row shows as failed).  The table is
printed at the end of the run: the fault, what the user saw, and what was kept."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from loco_lan.cluster.local import LocalCluster
from loco_lan.cluster.tools import Toolbox
from loco_lan.localregistry import LocalRegistry

REPO = Path(__file__).resolve().parents[1]
os.environ["PATH"] = f"{Toolbox().bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory) -> LocalCluster:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok (3 nodes), started for this session."""
    cluster = LocalCluster("pytest", state_root=tmp_path_factory.mktemp("clusters"), nodes=3)
    cluster.up(timeout=180)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> LocalRegistry:
    """A CNCF distribution registry on loopback, plain HTTP, no auth, for this session."""
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def kubectl(local_cluster):
    """Run the pinned kubectl against the session cluster; returns the CompletedProcess."""

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [Toolbox().binary("kubectl"), "--kubeconfig", str(local_cluster.kubeconfig), *args],
            input=input, capture_output=True, check=check, timeout=120,
        )

    return run


# (test file, words of the skip reason): the only skips CI accepts, each for a reason that is not
# a part missing from the machine.
ALLOWED_SKIPS = [
    # A developer's machine with a real Windows 98 image where the test needs there to be none.
    ("tests/integration/emulator/test_emulator_entrypoint.py", "this machine has a real /images/win98.qcow2"),
]
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report):
    if not report.skipped or not os.environ.get("CI") or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    path = report.nodeid.split("::", 1)[0]
    if not any(path == allowed and words in reason for allowed, words in ALLOWED_SKIPS):
        _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class Row:
    fault: str
    saw: str = "(row failed)"
    kept: str = "(row failed)"


ROWS: list[Row] = []


@pytest.fixture
def row(request) -> Row:
    entry = Row((request.function.__doc__ or request.function.__name__).strip().splitlines()[0])
    ROWS.append(entry)
    return entry


def table(rows: list[Row]) -> list[str]:
    cells = [("fault", "what the user saw", "what was kept")] + [(r.fault, r.saw, r.kept) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(3)).rstrip() for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def pytest_terminal_summary(terminalreporter):
    if ROWS:
        terminalreporter.section("reliability: faults injected")
        for line in table(ROWS):
            terminalreporter.write_line(line)
    if _unexpected_skips:
        terminalreporter.section("skips not allowed under CI (tests/conftest.py ALLOWED_SKIPS)", red=True)
        for line in _unexpected_skips:
            terminalreporter.write_line(line)
