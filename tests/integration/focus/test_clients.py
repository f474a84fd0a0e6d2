"""Clients of a real focus service: the EV3 twin (the brick's own code) and the ``loco focus`` commands."""

import re
import subprocess
import sys
import types

import pytest

from loco_lan.focus.ev3_twin import EV3_DIR, Ev3Twin


def test_ev3_twin_cycles_selects_holds_and_survives_a_restart(focus_service):
    service = focus_service("--mode", "single")
    twin = Ev3Twin(service.url, service.token)
    twin.run(set(), 40)
    assert (twin.shown, twin.status) == ("instance-0", "focus: none")
    twin.tap("right")
    twin.tap("right")
    twin.tap("center")
    assert service.get()["active"] == ["instance-2"]
    twin.tap("left")
    twin.tap("left")
    twin.tap("left")  # wraps around to the last instance
    assert twin.shown == "instance-3"
    twin.tap("center")
    assert service.get()["active"] == ["instance-3"]
    twin.hold("center")
    assert service.get()["active"] == []
    assert [a[0] for a in twin.actions].count("clear") == 1

    service.stop()  # the brick's kept-alive socket goes dead with it
    twin.tap("center")
    assert twin.status == "offline, retrying"
    service.start()
    twin.run(set(), 1200)  # the retry after the backoff goes through on a new socket
    assert service.get()["active"] == ["instance-3"]
    assert twin.status == "focus: instance-3"


def test_ev3_twin_with_a_wrong_token_is_told_so(focus_service):
    service = focus_service()
    twin = Ev3Twin(service.url, "not-the-token")
    twin.run(set(), 40)
    twin.tap("center")
    assert twin.status == "refused 401"
    assert service.get()["active"] == []


def loco(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", "focus", *args], capture_output=True, text=True, timeout=60
    )


def test_loco_focus_commands(focus_service, focus_dir):
    service = focus_service("--mode", "multi", "--max-active", "2")
    common = ["--url", service.url, "--token-file", str(focus_dir / "token")]
    assert loco("set", "instance-1", *common).stdout == "instance-1\n"
    assert loco("add", "instance-3", *common).stdout == "instance-1 instance-3\n"
    full = loco("add", "instance-0", *common)
    assert full.returncode == 1
    assert full.stderr == (
        "loco: error: focus service refused (409): focus is full (2 of 2: instance-1, "
        "instance-3); remove one first\n"
    )
    assert loco("remove", "instance-1", *common).stdout == "instance-3\n"
    assert '"hotkey": "Ctrl+4"' in loco("get", "--url", service.url, "--json").stdout
    unknown = loco("set", "instance-8", *common)
    assert unknown.stderr.startswith(
        "loco: error: focus service refused (400): unknown instance id(s): instance-8 "
        "(valid ids: instance-0, instance-1, instance-2, instance-3)"
    )
    no_token = loco("clear", "--url", service.url)
    assert no_token.returncode == 1 and "(401)" in no_token.stderr
    assert loco("clear", *common).stdout == "(nothing focused)\n"
    assert service.get()["active"] == []


class FakeBrick:
    """Just enough pybricks for ev3/main.py: scripted buttons, a fake clock, recorded screen and beeps."""

    def __init__(self, script: list[tuple[int, list[str]]]):
        self.script = script  # (until_ms, buttons held)
        self.now = 0
        self.beeps: list[int] = []
        self.screens: list[list[str]] = []
        brick = self

        class Buttons:
            def pressed(self):
                for until, held in brick.script:
                    if brick.now < until:
                        return held
                raise EOFError  # script over: leave main()'s endless loop

        class Speaker:
            def beep(self, frequency, duration):
                brick.beeps.append(frequency)

        class Screen:
            def clear(self):
                brick.screens.append([])

            def draw_text(self, x, y, text):
                brick.screens[-1].append(text)

        self.buttons, self.speaker, self.screen = Buttons(), Speaker(), Screen()

    def modules(self) -> dict:
        hubs, parameters, tools = (types.ModuleType(f"pybricks.{n}") for n in ("hubs", "parameters", "tools"))
        hubs.EV3Brick = lambda: self
        parameters.Button = types.SimpleNamespace(LEFT="left", RIGHT="right", CENTER="center")
        tools.StopWatch = lambda: types.SimpleNamespace(time=lambda: self.now)
        tools.wait = self._wait
        return {
            "pybricks": types.ModuleType("pybricks"),
            "pybricks.hubs": hubs,
            "pybricks.parameters": parameters,
            "pybricks.tools": tools,
        }

    def _wait(self, ms):
        self.now += ms


def test_ev3_main_program_with_fake_pybricks_drives_the_service(focus_service, tmp_path, monkeypatch):
    service = focus_service()
    brick = FakeBrick([(100, []), (200, ["right"]), (300, []), (400, ["center"]), (500, [])])
    source = (EV3_DIR / "main.py").read_text()
    source = re.sub(r'^SERVICE_URL = ".*"$', f'SERVICE_URL = "{service.url}"', source, flags=re.M)
    (tmp_path / "token.txt").write_text(service.token)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EV3_DIR))
    for name, module in brick.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(EOFError):
        exec(compile(source, str(EV3_DIR / "main.py"), "exec"), {"__name__": "__main__"})
    assert service.get()["active"] == ["instance-1"]
    assert brick.beeps == [600, 1000]  # "show" on right, "focus" on the centre release
    assert brick.screens[-1] == ["instance-1", "focus: instance-1"]
