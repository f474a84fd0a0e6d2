"""The EV3 button logic (ev3/focuspad.py) and a guard that ev3/ stays MicroPython-plain."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loco_lan.focus.ev3_twin import EV3_DIR, load_ev3_module

focuspad = load_ev3_module("focuspad")
IDS = ["instance-0", "instance-1", "instance-2"]


def press(pad, button, start, ms):
    """Hold ``button`` from ``start`` for ``ms`` (polled every 20 ms) and release; all actions."""
    actions = []
    for t in range(start, start + ms, 20):
        actions += pad.update({button}, t)
    return actions + pad.update(set(), start + ms)


def test_left_right_cycle_and_wrap():
    pad = focuspad.FocusPad(IDS)
    assert press(pad, "right", 0, 60) == [("show", "instance-1")]
    assert press(pad, "left", 100, 60) == [("show", "instance-0")]
    assert press(pad, "left", 200, 60) == [("show", "instance-2")]
    assert press(pad, "right", 300, 500) == [("show", "instance-0")]  # holding does not repeat


def test_short_centre_focuses_long_centre_clears_once():
    pad = focuspad.FocusPad(IDS, long_ms=800)
    press(pad, "right", 0, 40)
    assert press(pad, "center", 100, 200) == [("focus", "instance-1")]
    held = press(pad, "center", 1000, 2000)
    assert held == [("clear", None)]


def test_clear_fires_while_still_held():
    pad = focuspad.FocusPad(IDS, long_ms=800)
    assert pad.update({"center"}, 0) == []
    assert pad.update({"center"}, 780) == []
    assert pad.update({"center"}, 800) == [("clear", None)]
    assert pad.update({"center"}, 900) == []
    assert pad.update(set(), 950) == []


def test_no_ids_yet_does_nothing_then_cursor_follows_focus():
    pad = focuspad.FocusPad()
    assert press(pad, "right", 0, 40) == []
    assert press(pad, "center", 100, 40) == []
    pad.set_ids(IDS, focused="instance-2")
    assert pad.shown() == "instance-2"
    pad.set_ids(["instance-2", "instance-5"])
    assert pad.shown() == "instance-2"  # stays on the same id
    pad.set_ids(["instance-7"])
    assert pad.shown() == "instance-7"


@pytest.mark.parametrize("path", sorted(Path(EV3_DIR).glob("*.py")), ids=lambda p: p.name)
def test_ev3_code_avoids_what_pybricks_micropython_lacks(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"{path.name}:{node.lineno}: f-string"
        assert not isinstance(node, (ast.AnnAssign, ast.NamedExpr, ast.Match)), f"{path.name}:{node.lineno}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None and all(a.annotation is None for a in node.args.args), node.name
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not {"typing", "dataclasses", "contextlib", "asyncio", "pathlib"} & set(names), names


SCENARIO = Path(__file__).resolve().parent / "ev3_scenario"
MICROPYTHON = Path(__file__).resolve().parents[2] / "tools" / "micropython"


def run_scenario_cpython() -> str:
    env = {**os.environ, "PYTHONPATH": f"{SCENARIO}{os.pathsep}{EV3_DIR}"}
    return subprocess.run(
        [sys.executable, str(SCENARIO / "scenario.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_brick_code_syncs_focuses_reconnects_and_clears():
    lines = run_scenario_cpython().splitlines()
    assert lines[0].startswith("[] instance-1 focus: instance-1 (['GET /api/instances HTTP/1.1'")
    assert (
        "'POST /api/active HTTP/1.1', 'Authorization: Bearer s3cret', '{\"ids\": [\"instance-2\"]}'"
        in lines[2]
    )
    assert lines[4].startswith("offline, retrying")  # dead keep-alive socket, service still down
    assert lines[5] == "[] offline, retrying"  # the retry waits for its turn
    assert lines[6].startswith("[] focus: instance-2")  # and then goes through on a new socket
    assert lines[7] == "1800 [('clear', None)] focus: none"  # held 800 ms: cleared while still held


@pytest.mark.skipif(
    not (shutil.which("node") and (MICROPYTHON / "node_modules").is_dir()),
    reason="MicroPython (npm ci in tools/micropython) not installed",
)
def test_brick_code_behaves_the_same_under_micropython():
    files = [
        SCENARIO / "scenario.py",
        SCENARIO / "usocket.py",
        EV3_DIR / "focuslink.py",
        EV3_DIR / "focuspad.py",
    ]
    micropython = subprocess.run(
        ["node", str(MICROPYTHON / "run.mjs"), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert micropython.returncode == 0, micropython.stderr[-2000:]
    assert micropython.stdout == run_scenario_cpython()
