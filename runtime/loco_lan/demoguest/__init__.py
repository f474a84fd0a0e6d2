"""The demo guest: a bootable disk that stands in for the Windows 98 snapshot where that cannot
be fetched, and that exercises the whole player's path on a real QEMU.

It boots in a second on the snapshot's hardware (``pc``, std VGA, i8042, PC speaker), paints a
desktop the boot check recognises (teal background, taskbar, Start button) with a demo window,
first at 640x480x8 and then at 1024x768x16 as Windows 98 does while it boots, and then:

- moves: a square bounces along a track and a frame counter advances 25 times a second
  (F8 pauses it, so the guest can also be idle);
- keeps its CPU busy on demand: F7 stops it halting while it waits, as Windows 98 idles (a
  guest that uses all the CPU it is given, to measure a CPU limit by);
- answers keys: every scancode byte is counted and logged in the window, and each key press
  flips the black/white latency square;
- answers the pointer: QEMU's vmmouse gives it the absolute position, drawn as a cross, and a
  click leaves a marker where it happened (left red, right blue, middle yellow);
- makes sound on demand: F9 toggles a PC-speaker tone;
- F10 covers the screen around the window with full-screen motion, F11 switches resolution,
  F12 cycles the colour depth (16, 32, 8 bits).

The program is C and a little assembly (``src/``), compiled here with the system's gcc and
binutils into a flat image; this module adds the layout, palette and font it draws with (the
same tables :func:`read_panel` reads the screen back with) and turns it into a qcow2.

The same program also runs as a Linux process, ``loco-screen`` (``src/linux.c``: the framebuffer,
the console's raw scancodes, the same vmmouse and speaker ports): the test guest with a network
stack (:mod:`loco_lan.testguest`) shows it as its screen (:func:`screen_program`).
"""

import hashlib
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from loco_lan import demodisk
from loco_lan.errors import LocoError

MAGIC, VERSION = 0x4F434F4C, 1
BOOT_MODE = (640, 480, 8)
MAIN_MODE = (1024, 768, 16)
BOOT_MS, FRAME_MS, TONE_HZ = 1500, 40, 880
SCALE = 3  # font pixels are SCALE x SCALE screen pixels
WINDOW = (600, 236)  # the demo window's size; it is centred, 40 pixels below the top

# Palette order as in demodisk (TEAL, FACE, WHITE, BLACK, SHADOW, NAVY, RED, GREEN, BLUE,
# YELLOW), at 8 bits per channel, padded to 16 with greys.
PALETTE = [tuple(v * 255 // 63 for v in rgb) for rgb in demodisk.PALETTE]
PALETTE += [(g, g, g) for g in range(128, 128 + 8 * (16 - len(PALETTE)), 8)]
TEAL, FACE, WHITE, BLACK, SHADOW, NAVY, RED, GREEN, BLUE, YELLOW = range(10)

FONT = {  # 5x7 hex digits, rows top to bottom
    0x0: "01110 10001 10011 10101 11001 10001 01110",
    0x1: "00100 01100 00100 00100 00100 00100 01110",
    0x2: "01110 10001 00001 00010 00100 01000 11111",
    0x3: "11111 00010 00100 00010 00001 10001 01110",
    0x4: "00010 00110 01010 10010 11111 00010 00010",
    0x5: "11111 10000 11110 00001 00001 10001 01110",
    0x6: "00110 01000 10000 11110 10001 10001 01110",
    0x7: "11111 00001 00010 00100 01000 01000 01000",
    0x8: "01110 10001 10001 01110 10001 10001 01110",
    0x9: "01110 10001 10001 01111 00001 00010 01100",
    0xA: "01110 10001 10001 11111 10001 10001 10001",
    0xB: "11110 10001 10001 11110 10001 10001 11110",
    0xC: "01110 10001 10000 10000 10000 10001 01110",
    0xD: "11100 10010 10001 10001 10001 10010 11100",
    0xE: "11111 10000 10000 11110 10000 10000 11111",
    0xF: "11111 10000 10000 11110 10000 10000 10000",
}
GLYPHS = {d: np.array([[c == "1" for c in row] for row in rows.split()]) for d, rows in FONT.items()}

# Fields in the window: (x, y, digits, colour), in the order of demo.h's enum field_id. No blue
# ink: the boot check would take blue text for a window caption.
FIELDS = {
    "frame": (124, 92, 4, BLACK),
    "makes": (124, 118, 4, BLACK),
    "breaks": (214, 118, 4, BLACK),
    "log": (124, 144, 16, BLACK),  # 8 scancode bytes, as pairs
    "mouse_x": (124, 170, 4, BLACK),
    "mouse_y": (214, 170, 4, BLACK),
    "buttons": (304, 170, 1, BLACK),
    "wheel": (340, 170, 4, BLACK),
    "clicks": (124, 196, 4, BLACK),
    "tone": (214, 196, 1, BLACK),
    "bpp": (250, 196, 2, BLACK),
}
TRACK = (12, 32, 576, 48)  # x, y, w, h in the window; the square is h x h
LATENCY = (12, 92, 96, 96)
LOG_BYTES = 8

# Keys the guest itself reacts to (set-1 make codes) and their X keysyms, for tests and benches.
KEYSYMS = {"F7": 0xFFC4, "F8": 0xFFC5, "F9": 0xFFC6, "F10": 0xFFC7, "F11": 0xFFC8, "F12": 0xFFC9}


def window_origin(width: int, height: int) -> tuple[int, int]:
    return (width - WINDOW[0]) // 2, 40


def desktop_rects(width: int, height: int) -> list[tuple[int, int, int, int, int]]:
    """The desktop at ``width`` x ``height``: the demo window's chrome (its frame first: the
    program leaves that area out of full-screen motion), then demodisk's 640x480 taskbar moved
    to the bottom edge and its tray to the right edge."""
    wx, wy = window_origin(width, height)
    w, h = WINDOW
    window = [
        (0, 0, w, h, FACE),
        (0, 0, w - 1, 1, WHITE),
        (0, 0, 1, h - 1, WHITE),
        (w - 1, 0, w, h, BLACK),
        (0, h - 1, w, h, BLACK),
        (4, 4, w - 4, 22, NAVY),
        (10, 9, 130, 17, WHITE),  # the caption's text
    ]
    for x in (w - 56, w - 40, w - 22):  # minimise, maximise, close: an ordinary window, no dialog
        window += [(x, 6, x + 16, 20, FACE), (x, 6, x + 15, 7, WHITE), (x, 6, x + 1, 19, WHITE),
                   (x, 19, x + 16, 20, BLACK), (x + 15, 6, x + 16, 20, BLACK), (x + 5, 11, x + 11, 15, BLACK)]
    rects = [(wx + x0, wy + y0, wx + x1, wy + y1, c) for x0, y0, x1, y1, c in window]
    for x0, y0, x1, y1, colour in demodisk.TASKBAR:
        dx, dy = (width - 640 if x0 >= 560 else 0), height - 480
        x1 = width if x1 == 640 and x0 < 560 else x1 + dx  # the bar itself spans the screen
        rects.append((x0 + dx, y0 + dy, x1, y1 + dy, colour))
    return rects


def config_blob() -> bytes:
    """What the program reads at the end of its image (demo.h's struct config)."""
    head = struct.pack("<IHHHH", MAGIC, VERSION, BOOT_MS, TONE_HZ, FRAME_MS)
    head += bytes(v for rgb in PALETTE for v in rgb)
    head += b"".join(bytes(int(row.replace(" ", ""), 2) for row in FONT[d].split()) for d in range(16))
    head += struct.pack("<BB", SCALE, 0)
    rects: list[tuple[int, int, int, int, int]] = []
    for width, height, bpp in (BOOT_MODE, MAIN_MODE):
        mode_rects = desktop_rects(width, height)
        head += struct.pack("<7H", width, height, bpp, *window_origin(width, height), len(rects), len(mode_rects))
        rects += mode_rects
    head += struct.pack("<4H", *TRACK) + struct.pack("<4H", *LATENCY)
    head += b"".join(struct.pack("<HHBB", *spec) for spec in FIELDS.values())
    head += struct.pack("<H", len(rects))
    head += b"".join(struct.pack("<4HBx", *rect) for rect in rects)
    return head


# -- building ------------------------------------------------------------------------------------

SOURCES = ("boot.S", "bare.c", "ports.c", "demo.c")
CFLAGS = ["-m32", "-march=pentium2", "-Os", "-std=gnu11", "-ffreestanding", "-fno-pic", "-fno-pie",
          "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-mgeneral-regs-only", "-Wall",
          "-Werror", "-nostdlib"]


def _run(command: list[str], cwd: Path) -> str:
    try:
        return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError as exc:
        raise LocoError(f"building the demo guest needs {command[0]} (Debian: apt install gcc)") from exc
    except subprocess.CalledProcessError as exc:
        raise LocoError(f"building the demo guest failed: {' '.join(command)}: {exc.stderr.strip()}") from exc


def build_image(workdir: Path) -> bytes:
    """The raw disk: boot sector, program, config blob, padded to whole sectors."""
    source = resources.files(__package__) / "src"
    for name in (*SOURCES, "demo.h", "link.ld"):
        (workdir / name).write_bytes((source / name).read_bytes())
    objects = []
    for name in SOURCES:
        obj = f"{name.rsplit('.', 1)[0]}.o"
        _run(["gcc", *CFLAGS, "-c", name, "-o", obj], workdir)
        objects.append(obj)
    _run(["ld", "-m", "elf_i386", "-T", "link.ld", "--build-id=none", "-o", "demo.elf", *objects], workdir)
    _run(["objcopy", "-O", "binary", "demo.elf", "demo.bin"], workdir)
    symbols = {}  # name -> address, from nm's "address type name" lines
    for line in _run(["nm", "demo.elf"], workdir).splitlines():
        if len(fields := line.split()) == 3:
            symbols[fields[2]] = fields[0]
    program = (workdir / "demo.bin").read_bytes()
    end = int(symbols["_image_end"], 16) - 0x7C00  # objcopy leaves out the alignment before it
    if not end - 16 < len(program) <= end:
        raise LocoError("the demo guest's image does not end at _image_end: check src/link.ld")
    image = bytearray(program.ljust(end, b"\0") + config_blob())
    image += bytes(-len(image) % 512)
    sectors = len(image) // 512 - 1
    if sectors > 127:  # what one INT 13h extended read takes everywhere
        raise LocoError(f"the demo guest is {sectors} sectors long, more than 127")
    struct.pack_into("<H", image, int(symbols["sector_count"], 16) - 0x7C00, sectors)
    return bytes(image)


def screen_program(directory: Path) -> dict[str, Path]:
    """Build ``loco-screen`` and its config into ``directory``: the initramfs paths they go to."""
    source = resources.files(__package__) / "src"
    for name in ("linux.c", "ports.c", "demo.c", "demo.h"):
        (directory / name).write_bytes((source / name).read_bytes())
    _run(["gcc", *CFLAGS, "-no-pie", "-static", "-Wl,--build-id=none", "-o", "loco-screen",
          "linux.c", "ports.c", "demo.c"], directory)
    (directory / "loco-screen.cfg").write_bytes(config_blob())
    return {"bin/loco-screen": directory / "loco-screen", "etc/loco-screen.cfg": directory / "loco-screen.cfg"}


def make_disk(path: Path) -> Path:
    """The demo guest as a qcow2 image at ``path``."""
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "demo.raw"
        raw.write_bytes(build_image(Path(scratch)))
        if not shutil.which("qemu-img"):
            raise LocoError("building the demo guest needs qemu-img (Debian: apt install qemu-utils)")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure(path: str | Path, check_mode: bool = False) -> tuple[bool, str]:
    """Make ``path`` the demo guest's disk; returns (changed, sha256). The build gives the same
    bytes every time, so an existing disk is compared, not replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        try:
            fresh = make_disk(Path(scratch) / "demo.qcow2")
        except (OSError, subprocess.CalledProcessError) as exc:
            raise LocoError(f"cannot build the demo disk: {exc}") from exc
        digest = _sha256(fresh)
        if path.exists() and _sha256(path) == digest:
            return False, digest
        if not check_mode:
            fresh.replace(path)
    return True, digest


# -- reading the screen back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """What the demo window shows, read from a screen."""

    width: int
    height: int
    frame: int
    makes: int
    breaks: int
    log: tuple[int, ...]  # the last scancode bytes, oldest first (0: none yet)
    mouse: tuple[int, int]
    buttons: int
    wheel: int
    clicks: int
    tone: bool
    bpp: int
    latency: bool  # the latency square is white
    square_x: int  # where the bouncing square is on its track


def _close(frame: np.ndarray, colour: int, tolerance: int = 40) -> np.ndarray:
    return np.abs(frame.astype(np.int16) - np.array(PALETTE[colour], np.int16)).max(axis=-1) <= tolerance


def _digit(frame: np.ndarray, x: int, y: int) -> int:
    """The hex digit whose glyph is at x, y: sampled at the centre of each font pixel, the
    closest glyph wins (lossy video may flip a pixel or two)."""
    rows = y + SCALE * np.arange(7) + SCALE // 2
    cols = x + SCALE * np.arange(5) + SCALE // 2
    ink = ~_close(frame[np.ix_(rows, cols)], FACE)
    return min(GLYPHS, key=lambda d: int((GLYPHS[d] != ink).sum()))


def _number(frame: np.ndarray, origin: tuple[int, int], name: str) -> int:
    x, y, digits, _ = FIELDS[name]
    value = 0
    for i in range(digits):
        value = value << 4 | _digit(frame, origin[0] + x + i * 6 * SCALE, origin[1] + y)
    return value


def read_panel(frame: np.ndarray) -> Panel:
    """Read the demo window off an HxWx3 RGB screen (a VNC framebuffer or a decoded video frame)."""
    height, width = frame.shape[:2]
    if (width, height) not in ((BOOT_MODE[0], BOOT_MODE[1]), (MAIN_MODE[0], MAIN_MODE[1])):
        raise LocoError(f"a {width}x{height} screen is not one of the demo guest's modes")
    origin = window_origin(width, height)
    x, y, _, _ = FIELDS["log"]
    advance, pair = 6 * SCALE, 15 * SCALE
    log = tuple(
        _digit(frame, origin[0] + x + i * pair, origin[1] + y) << 4
        | _digit(frame, origin[0] + x + i * pair + advance, origin[1] + y)
        for i in range(LOG_BYTES)
    )
    lx, ly, lw, lh = LATENCY
    centre = frame[origin[1] + ly + lh // 2, origin[0] + lx + lw // 2]
    tx, ty, tw, th = TRACK
    track = _close(frame[origin[1] + ty + th // 2, origin[0] + tx : origin[0] + tx + tw], RED)
    wheel = _number(frame, origin, "wheel")
    return Panel(
        width=width,
        height=height,
        frame=_number(frame, origin, "frame"),
        makes=_number(frame, origin, "makes"),
        breaks=_number(frame, origin, "breaks"),
        log=log,
        mouse=(_number(frame, origin, "mouse_x"), _number(frame, origin, "mouse_y")),
        buttons=_number(frame, origin, "buttons"),
        wheel=wheel - 0x10000 if wheel & 0x8000 else wheel,
        clicks=_number(frame, origin, "clicks"),
        tone=bool(_number(frame, origin, "tone")),
        bpp=_number(frame, origin, "bpp"),
        latency=bool(centre.min() > 200),
        square_x=int(np.argmax(track)) if track.any() else -1,
    )


def latency_square(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the latency square is on a ``width`` x ``height`` screen: x, y, w, h."""
    wx, wy = window_origin(width, height)
    return wx + LATENCY[0], wy + LATENCY[1], LATENCY[2], LATENCY[3]
