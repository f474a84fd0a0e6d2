"""The input wire format of the ``input`` data channel (pure; its JavaScript twin is
``web/src/input.ts``, and ``docs/streaming.md`` describes both).

Viewer to gateway, one binary message per event, big-endian:

====  ======================================================  =====
op    fields                                                   bytes
====  ======================================================  =====
1     key: ``down`` u8 (1 press, 0 release), ``keysym`` u32    6
2     pointer: ``buttons`` u8, ``x`` u16, ``y`` u16            6
3     wheel: ``dy`` i8, ``dx`` i8, ``x`` u16, ``y`` u16        7
4     release everything this viewer holds down                1
====  ======================================================  =====

Keysyms are X keysyms (Enter 0xFF0D, F1 0xFFBE, ...). ``buttons`` is the RFB mask: 1 left,
2 middle, 4 right. ``x`` and ``y`` are where on the guest's screen, scaled to 0..65535 whatever
its resolution, so an event sent just before the guest changes mode still lands on the same
spot. A wheel step is one notch: ``dy`` > 0 scrolls down, ``dx`` > 0 right.

Gateway to viewer, text (JSON): ``{"type": "state", "player": bool, "width", "height",
"connected": bool}`` when the channel opens and whenever one of them changes.
"""

import struct
from dataclasses import dataclass

KEY, POINTER, WHEEL, RELEASE = 1, 2, 3, 4
SIZES = {KEY: 6, POINTER: 6, WHEEL: 7, RELEASE: 1}
SCALE = 65535
MAX_WHEEL_STEPS = 16  # one message scrolls at most this far: a garbled one cannot flood the guest


class InputError(ValueError):
    """A message that is not one of the wire format's."""


@dataclass(frozen=True)
class Key:
    down: bool
    keysym: int


@dataclass(frozen=True)
class Pointer:
    buttons: int
    x: int  # 0..65535
    y: int


@dataclass(frozen=True)
class Wheel:
    dy: int
    dx: int
    x: int
    y: int


@dataclass(frozen=True)
class Release:
    pass


Event = Key | Pointer | Wheel | Release


def decode(message: bytes | str) -> Event:
    if isinstance(message, str):
        raise InputError("input messages are binary")
    if not message:
        raise InputError("empty input message")
    op = message[0]
    if op not in SIZES:
        raise InputError(f"unknown input op {op}")
    if len(message) != SIZES[op]:
        raise InputError(f"input op {op} takes {SIZES[op]} bytes, not {len(message)}")
    if op == KEY:
        down, keysym = struct.unpack(">BI", message[1:])
        if down > 1 or not 0 < keysym <= 0x1FFFFFFF:
            raise InputError(f"bad key event (down={down}, keysym={keysym:#x})")
        return Key(bool(down), keysym)
    if op == POINTER:
        buttons, x, y = struct.unpack(">BHH", message[1:])
        if buttons & ~7:
            raise InputError(f"bad pointer buttons {buttons:#x}")
        return Pointer(buttons, x, y)
    if op == WHEEL:
        dy, dx, x, y = struct.unpack(">bbHH", message[1:])
        if abs(dy) > MAX_WHEEL_STEPS or abs(dx) > MAX_WHEEL_STEPS:
            raise InputError(f"wheel step ({dy}, {dx}) beyond {MAX_WHEEL_STEPS}")
        return Wheel(dy, dx, x, y)
    return Release()


def encode(event: Event) -> bytes:
    if isinstance(event, Key):
        return struct.pack(">BBI", KEY, int(event.down), event.keysym)
    if isinstance(event, Pointer):
        return struct.pack(">BBHH", POINTER, event.buttons, event.x, event.y)
    if isinstance(event, Wheel):
        return struct.pack(">BbbHH", WHEEL, event.dy, event.dx, event.x, event.y)
    return bytes([RELEASE])


def to_pixels(value: int, size: int) -> int:
    """A 0..65535 coordinate on a screen ``size`` pixels wide (or high)."""
    return round(value * (size - 1) / SCALE) if size > 1 else 0


# RFB pointer mask bits for wheel notches: up, down, left, right.
WHEEL_UP, WHEEL_DOWN, WHEEL_LEFT, WHEEL_RIGHT = 8, 16, 32, 64
