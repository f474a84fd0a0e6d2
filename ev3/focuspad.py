"""What the EV3 buttons mean, as a pure state machine.

Runs unchanged on the brick (pybricks MicroPython) and in CPython (the twin
and the unit tests), so it sticks to plain Python: no f-strings, no type
hints, no dataclasses, and time comes in from the caller in milliseconds.

Buttons are named "left", "right" and "center". ``update`` takes the set of
buttons down right now and returns the actions that edge implies:

- ("show", id)   left/right moved the cursor to ``id`` (wrapping around)
- ("focus", id)  centre was pressed and released quickly: focus the shown id
- ("clear", None) centre was held for ``long_ms``: focus nothing (fires while
                 still held, so the player feels it; the release then does nothing)
"""

LONG_PRESS_MS = 800


class FocusPad:
    def __init__(self, ids=None, long_ms=LONG_PRESS_MS):
        self.ids = list(ids or [])
        self.cursor = 0
        self.long_ms = long_ms
        self._down = set()
        self._centre_since = None
        self._centre_done = False

    def shown(self):
        """The id under the cursor, or None before any ids are known."""
        if not self.ids:
            return None
        return self.ids[self.cursor]

    def set_ids(self, ids, focused=None):
        """Take new ids; the cursor goes to ``focused``, else stays on its id, else goes to the first."""
        keep = self.shown()
        self.ids = list(ids)
        self.cursor = 0
        for wanted in (focused, keep):
            if wanted is not None and wanted in self.ids:
                self.cursor = self.ids.index(wanted)
                return

    def _move(self, step):
        self.cursor = (self.cursor + step) % len(self.ids)
        return ("show", self.shown())

    def update(self, pressed, now_ms):
        pressed = set(pressed)
        pressed_now = pressed - self._down
        released = self._down - pressed
        self._down = pressed
        actions = []
        if self.ids and "left" in pressed_now:
            actions.append(self._move(-1))
        if self.ids and "right" in pressed_now:
            actions.append(self._move(1))
        if "center" in pressed_now:
            self._centre_since = now_ms
            self._centre_done = False
        held = self._centre_since is not None and not self._centre_done
        if held and "center" in pressed and now_ms - self._centre_since >= self.long_ms:
            self._centre_done = True
            actions.append(("clear", None))
        if "center" in released and self._centre_since is not None:
            if not self._centre_done and self.ids:
                actions.append(("focus", self.shown()))
            self._centre_since = None
        return actions
