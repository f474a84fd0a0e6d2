"""The EV3 focus remote without the brick: the brick's own ``ev3/`` code, virtual buttons and clock.

``focuspad`` (button logic) and ``focuslink`` (HTTP client and loop) are loaded
from the ``ev3/`` folder of the checkout, the very files copied to the brick,
so a twin driving a real focus service tests what the brick will run.
Interactive use: ``python -m loco_lan.focus.ev3_twin --url URL --token-file F``
then type ``l``, ``r``, ``c`` (tap centre) or ``h`` (hold centre) per line.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.focus.client import DEFAULT_URL, read_token

EV3_DIR = Path(__file__).resolve().parents[3] / "ev3"
TICK_MS = 20  # the brick polls its buttons this often


def load_ev3_module(name: str, ev3_dir: Path = EV3_DIR):
    """Import ``ev3/<name>.py`` under a private name (the brick imports it as plain ``name``)."""
    path = ev3_dir / f"{name}.py"
    if not path.is_file():
        raise LocoError(f"EV3 program file {path} not found (run from a loco.lan checkout)")
    spec = importlib.util.spec_from_file_location(f"loco_lan_ev3_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ev3Twin:
    def __init__(self, url: str, token: str | None = None, ev3_dir: Path = EV3_DIR, retry_ms: int = 1000):
        pad = load_ev3_module("focuspad", ev3_dir)
        link = load_ev3_module("focuslink", ev3_dir)
        self.remote = link.FocusRemote(link.Link.from_url(url, token), pad.FocusPad(), retry_ms=retry_ms)
        self.now_ms = 0
        self.actions: list[tuple] = []

    def run(self, pressed: set[str], ms: int) -> None:
        """Hold ``pressed`` down for ``ms`` virtual milliseconds, polling like the brick does."""
        for _ in range(max(1, ms // TICK_MS)):
            self.actions += self.remote.step(pressed, self.now_ms)
            self.now_ms += TICK_MS

    def tap(self, button: str) -> None:
        self.run({button}, 100)
        self.run(set(), TICK_MS)

    def hold(self, button: str) -> None:
        self.run({button}, self.remote.pad.long_ms + 200)
        self.run(set(), TICK_MS)

    @property
    def shown(self) -> str | None:
        return self.remote.pad.shown()

    @property
    def status(self) -> str:
        return self.remote.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--token-file", type=Path)
    args = parser.parse_args(argv)
    twin = Ev3Twin(args.url, read_token(args.token_file) if args.token_file else None)
    keys = {"l": ("tap", "left"), "r": ("tap", "right"), "c": ("tap", "center"), "h": ("hold", "center")}
    twin.run(set(), TICK_MS)
    print(f"shown {twin.shown} | {twin.status}")
    for line in sys.stdin:
        if line.strip() in keys:
            how, button = keys[line.strip()]
            getattr(twin, how)(button)
        else:
            twin.run(set(), TICK_MS)  # anything else just polls (retries happen here)
        print(f"shown {twin.shown} | {twin.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
