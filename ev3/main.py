#!/usr/bin/env pybricks-micropython
"""EV3 focus remote: left/right pick an instance, a short centre press focuses it, a long one clears.

Copy this folder to the brick (the pybricks/ev3dev VS Code extension downloads
it as a project), put the service token in token.txt beside it, set
SERVICE_URL below, and run main.py.
"""

from focuslink import FocusRemote, Link
from focuspad import FocusPad
from pybricks.hubs import EV3Brick
from pybricks.parameters import Button
from pybricks.tools import StopWatch, wait

SERVICE_URL = "http://192.168.10.1:8090"
TOKEN_FILE = "token.txt"
POLL_MS = 20

BUTTON_NAMES = ((Button.LEFT, "left"), (Button.RIGHT, "right"), (Button.CENTER, "center"))
BEEPS = {"show": 600, "focus": 1000, "clear": 300}


def read_token():
    try:
        with open(TOKEN_FILE) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def main():
    brick = EV3Brick()
    clock = StopWatch()
    remote = FocusRemote(Link.from_url(SERVICE_URL, read_token()), FocusPad())
    shown = None
    while True:
        down = brick.buttons.pressed()
        pressed = [name for button, name in BUTTON_NAMES if button in down]
        for action in remote.step(pressed, clock.time()):
            brick.speaker.beep(BEEPS[action[0]], 60)
        screen = (remote.pad.shown(), remote.status)
        if screen != shown:
            shown = screen
            brick.screen.clear()
            brick.screen.draw_text(0, 20, screen[0] or "no instances")
            brick.screen.draw_text(0, 60, screen[1])
        wait(POLL_MS)


main()
