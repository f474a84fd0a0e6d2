"""Focus rules and their persistence, free of any I/O framework.

``Catalog`` knows the instances (``instances.json``) and their focus hotkeys
(``hotkeys.json``), re-reading them when the files change. ``FocusState``
validates requested changes against the catalog and the mode, numbers every
change, and saves it to ``active.json``.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from loco_lan import schemas
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write, read_json

log = logging.getLogger(__name__)

MODES = ("single", "multi")


def saved_state(active=(), seq: int = 0) -> dict:
    """What ``active.json`` holds, the one shape every writer uses (the focus service, and the
    instances module creating the file)."""
    return {"active": list(active), "seq": seq}


class FocusRequestError(LocoError):
    """A request the focus rules reject; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, **details):
        super().__init__(message)
        self.status = status
        self.details = details


@dataclass(frozen=True)
class Instance:
    id: str
    index: int
    hotkey: str | None


def load_instances(path: Path, hotkeys_path: Path | None) -> dict[str, Instance]:
    """Parse ``instances.json`` (a list of objects with an ``id``) and bind each id's focus hotkey."""
    entries = read_json(path, "instances file")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] for e in entries
    ):
        raise LocoError(f"instances file {path} must be a list of objects with a string 'id'")
    hotkeys: dict[str, str] = {}
    if hotkeys_path is not None and hotkeys_path.exists():
        bindings = read_json(hotkeys_path, "hotkeys file")
        schemas.validate(bindings, "hotkeys", f"hotkeys file {hotkeys_path}")
        for key, target in bindings.get("focus", {}).items():
            hotkeys.setdefault(target, key)  # the first binding in the file is the one shown
    instances: dict[str, Instance] = {}
    for index, entry in enumerate(entries):
        if entry["id"] in instances:
            raise LocoError(f"instances file {path} lists {entry['id']!r} twice")
        instances[entry["id"]] = Instance(entry["id"], index, hotkeys.get(entry["id"]))
    return instances


class Catalog:
    """The instances focus may point at; re-read when either file changes, last good copy kept."""

    def __init__(self, instances_path: str | os.PathLike, hotkeys_path: str | os.PathLike | None = None):
        self.instances_path = Path(instances_path)
        if hotkeys_path is None:
            hotkeys_path = self.instances_path.with_name("hotkeys.json")
        self.hotkeys_path = Path(hotkeys_path)
        self._stamp = self._file_stamp()
        self._instances = load_instances(self.instances_path, self.hotkeys_path)

    def _file_stamp(self) -> tuple:
        stamp = []
        for path in (self.instances_path, self.hotkeys_path):
            try:
                st = path.stat()
                stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    @property
    def instances(self) -> dict[str, Instance]:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._instances = load_instances(self.instances_path, self.hotkeys_path)
                log.info("reloaded %d instances from %s", len(self._instances), self.instances_path)
            except LocoError as exc:
                log.warning("keeping the previous instance list: %s", exc)
        return self._instances


class FocusState:
    """The active ids, their sequence number, and the rules for changing them."""

    def __init__(self, path: str | os.PathLike, catalog: Catalog, mode: str = "single", max_active: int = 1):
        if mode not in MODES:
            raise LocoError(f"focus mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "single":
            max_active = 1
        if max_active < 1:
            raise LocoError("the maximum number of focused instances must be at least 1")
        self.path = Path(path)
        self.catalog = catalog
        self.mode = mode
        self.max_active = max_active
        self._snapshot: tuple[int, tuple[str, ...]] = self._load()

    def _load(self) -> tuple[int, tuple[str, ...]]:
        if not self.path.exists():
            return 0, ()
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            active, seq = saved["active"], saved.get("seq", 0)
            if not (isinstance(active, list) and all(isinstance(i, str) for i in active)):
                raise ValueError("'active' is not a list of ids")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "ignoring unreadable focus state %s (%s); starting with nothing focused", self.path, exc
            )
            return 0, ()
        known = self.catalog.instances
        kept = [i for i in dict.fromkeys(active) if i in known][: self.max_active]
        if kept != active:
            log.warning(
                "focus state %s: keeping %s of %s (unknown ids or over the limit)", self.path, kept, active
            )
        return (seq if isinstance(seq, int) else 0), tuple(kept)

    @property
    def active(self) -> tuple[str, ...]:
        return self._snapshot[1]

    @property
    def seq(self) -> int:
        return self._snapshot[0]

    def document(self) -> dict:
        """What GET answers and every WebSocket event carries: enough to snap a cursor to each tile."""
        seq, active = self._snapshot
        known = self.catalog.instances
        focus = []
        for instance_id in active:
            instance = known.get(instance_id)
            focus.append(
                {
                    "id": instance_id,
                    "index": instance.index if instance else None,
                    "hotkey": instance.hotkey if instance else None,
                }
            )
        return {
            "active": list(active),
            "focus": focus,
            "seq": seq,
            "mode": self.mode,
            "maxActive": self.max_active,
        }

    # -- planning: pure functions of the current state and a request ------------------------------

    def _validate(self, ids) -> list[str]:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise FocusRequestError("'ids' must be a list of instance id strings")
        known = self.catalog.instances
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise FocusRequestError(
                f"unknown instance id(s): {', '.join(unknown)}", unknown=unknown, valid=list(known)
            )
        if len(set(ids)) != len(ids):
            raise FocusRequestError("'ids' lists the same instance twice")
        return ids

    def plan_set(self, ids) -> tuple[str, ...]:
        ids = self._validate(ids)
        if len(ids) > self.max_active:
            raise FocusRequestError(
                f"{self.mode} focus mode takes at most {self.max_active} id(s), got {len(ids)}",
                maxActive=self.max_active,
            )
        return tuple(ids)

    def plan_add(self, ids) -> tuple[str, ...]:
        ids = self._validate(ids)
        if self.mode == "single":
            if len(ids) != 1:
                raise FocusRequestError("single focus mode adds exactly one id (it replaces the focus)")
            return tuple(ids)
        merged = self.active + tuple(i for i in ids if i not in self.active)
        if len(merged) > self.max_active:
            raise FocusRequestError(
                f"focus is full ({self.max_active} of {self.max_active}: {', '.join(self.active)}); "
                "remove one first",
                status=409,
                active=list(self.active),
                maxActive=self.max_active,
            )
        return merged

    def plan_remove(self, ids) -> tuple[str, ...]:
        ids = self._validate(ids)
        return tuple(i for i in self.active if i not in ids)

    # -- change and save ---------------------------------------------------------------------------

    def change(self, active: tuple[str, ...]) -> bool:
        """Make ``active`` current under the next sequence number; False when it is unchanged."""
        seq, current = self._snapshot
        if active == current:
            return False
        self._snapshot = (seq + 1, active)
        return True

    def save(self) -> None:
        """Write the current state to ``active.json`` atomically (blocking: the service uses a thread)."""
        seq, active = self._snapshot
        try:
            atomic_write(self.path, json.dumps(saved_state(active, seq), indent=2) + "\n")
        except OSError as exc:
            raise LocoError(f"cannot save focus state to {self.path}: {exc.strerror or exc}") from exc
