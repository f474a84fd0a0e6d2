"""ForwardSet's bookkeeping, with a shell standing in for kubectl."""

import time

from loco_lan.kube.portforward import ForwardSet


def forward_set(script: str) -> ForwardSet:
    # The pod and ports arrive as $1 and $2 after "--".
    return ForwardSet(["sh", "-c", script, "--"])


def wait_exited(forwards: ForwardSet) -> None:
    for child in forwards.children.values():
        child.wait(10)


def test_exited_children_are_restarted_and_running_ones_kept():
    forwards = forward_set("exit 3")
    forwards.sync([("pod-0", 15901, 5901)])
    first = forwards.children[("pod-0", 15901, 5901)]
    wait_exited(forwards)
    forwards.sync([("pod-0", 15901, 5901)])
    assert forwards.children[("pod-0", 15901, 5901)] is not first

    steady = forward_set("sleep 60")
    steady.sync([("pod-0", 15901, 5901)])
    child = steady.children[("pod-0", 15901, 5901)]
    steady.sync([("pod-0", 15901, 5901)])
    assert steady.children[("pod-0", 15901, 5901)] is child
    steady.close()
    assert child.poll() is not None


def test_forwards_no_longer_wanted_are_stopped():
    forwards = forward_set("sleep 60")
    forwards.sync([("pod-0", 15901, 5901), ("pod-1", 15902, 5901)])
    gone = forwards.children[("pod-1", 15902, 5901)]
    forwards.sync([("pod-0", 15901, 5901)])
    assert list(forwards.children) == [("pod-0", 15901, 5901)]
    deadline = time.monotonic() + 10
    while gone.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone.returncode is not None
    forwards.close()
    assert forwards.children == {}


def test_the_command_line_ends_with_pod_and_ports(tmp_path):
    out = tmp_path / "argv"
    forwards = forward_set(f'echo "$@" > {out}')
    forwards.sync([("loco-emulator-2", 15903, 5901)])
    wait_exited(forwards)
    assert out.read_text().split() == ["pod/loco-emulator-2", "15903:5901"]
