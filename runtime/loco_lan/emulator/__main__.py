"""``python -m loco_lan.emulator``: the container's entrypoint, same as ``loco emulator run``."""

import sys

from loco_lan.cli import main

sys.exit(main(["emulator", "run", *sys.argv[1:]]))
