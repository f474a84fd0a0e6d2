"""Where the binaries built by ``scripts/setup.sh`` live, and kwok's assets.

Nothing is downloaded here: a missing binary is a clear error that names the
setup script, so a test never silently runs against something else.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from loco_lan.errors import LocoError


def cache_dir() -> Path:
    return Path(os.environ.get("LOCO_CACHE_DIR") or os.path.expanduser("~/.cache/loco-lan"))


@dataclass(frozen=True)
class KwokAssets:
    crds: list[Path]
    stages: list[Path]


class Toolbox:
    def __init__(self, bin_dir: Path | None = None):
        self.bin_dir = Path(bin_dir or cache_dir() / "bin")

    def binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise LocoError(f"{name} not found in {self.bin_dir}; run scripts/setup.sh to build it")
        return str(path)

    def kwok_assets(self) -> KwokAssets:
        root = cache_dir() / "kwok"
        crds = sorted((root / "crds").glob("*.yaml"))
        stages = sorted((root / "stages").glob("*.yaml"))
        if not crds or not stages:
            raise LocoError(f"kwok CRDs/stages missing under {root}; run scripts/setup.sh")
        return KwokAssets(crds, stages)
