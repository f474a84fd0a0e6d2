"""Boot check pieces that need no screen: target parsing and live state names."""

import pytest

from loco_lan.bootcheck import live_state
from loco_lan.commands.boot_check import parse_target
from loco_lan.errors import LocoError
from loco_lan.screen import Analysis


@pytest.mark.parametrize(
    ("text", "target"),
    [("10.0.0.5:5901", ("10.0.0.5", 5901)), ("emu-0:1", ("emu-0", 5901)), ("[::1]:5902", ("::1", 5902))],
)
def test_targets(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["nohost", "host:port", "host:70000"])
def test_bad_targets(text):
    with pytest.raises(LocoError, match="--vnc"):
        parse_target(text)


def test_live_states():
    assert live_state(Analysis("desktop-dialog")) == "dialog"
    assert live_state(Analysis("booting", black=True)) == "black"
    assert live_state(Analysis("game")) == "game"
