"""Finders for Windows 98 shell chrome in a screen: the taskbar with its Start
button, and window title bars with their caption buttons.

Everything is measured from structure (colour classes, bevels, proportions),
never from fixed coordinates, so it holds at any resolution and colour depth.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: ``x0 <= x < x1``, ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class TitleBar:
    box: Box
    buttons: int  # caption buttons at its right end: 0 (progress box), 1 (X), 2 (? X), 3 (_ [] X)


class Palette:
    """Per-pixel colour classes of one RGB frame (computed once, shared by the finders)."""

    def __init__(self, rgb: np.ndarray):
        px = rgb.astype(np.int16)
        r, g, b = px[..., 0], px[..., 1], px[..., 2]
        hi = px.max(axis=2)
        lo = px.min(axis=2)
        neutral = hi - lo <= 24
        # 3D face grey: #C0C0C0 in 24-bit, #B8BCB8/#C6C3C6 after 16-bit expansion.
        self.face = neutral & (lo >= 150) & (hi <= 215)
        self.light = neutral & (lo >= 210)
        self.dark = hi <= 72
        # Active caption: navy #000080, or the Win98 gradient towards #1084D0.
        self.title = (b >= 96) & (b - r >= 60) & (b - g >= 40)
        self.vivid = (hi - lo >= 0.45 * hi) & (hi >= 64) & ~self.title
        self.hi = hi
        self.rgb = px


def _runs(mask: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Half-open ``(start, end)`` runs of True in a 1-D mask, bridging gaps up to ``max_gap``."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs: list[tuple[int, int]] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if runs and start - runs[-1][1] <= max_gap:
            runs[-1] = (runs[-1][0], int(end))
        else:
            runs.append((int(start), int(end)))
    return runs


def find_taskbar(pal: Palette) -> tuple[Box, Box] | None:
    """The taskbar docked at the bottom (or top) edge and its Start button: a
    full-width band of face grey, 14 px (a rescaled 28) to a quarter of the screen tall, holding
    the button at its left end."""
    height, width = pal.face.shape
    share = pal.face.mean(axis=1) >= 0.5
    for edge in (np.arange(height - 1, -1, -1), np.arange(height)):  # bottom edge first, then top
        rows = share[edge]
        skip = next((i for i in range(3) if rows[i]), 3)  # a thin bevel line may sit at the very edge
        size = int(np.argmin(rows[skip:])) if not rows[skip:].all() else height - skip
        if 14 <= size <= height // 4:
            ys = edge[skip : skip + size]
            band = Box(0, int(ys.min()), width, int(ys.max()) + 1)
            start = find_start_button(pal, band)
            if start:
                return band, start
    return None


def find_start_button(pal: Palette, band: Box) -> Box | None:
    """A button at the left end of the taskbar: a light edge over a dark one (raised),
    or the reverse (pressed: Start menu open), 14-40 px apart, 1.4-6 times as wide
    as tall (any caption language), with the flag logo or black text inside.
    Measured on the button itself, so a double-height taskbar holds it too."""

    def edges(mask: np.ndarray) -> list[tuple[int, int, int]]:
        return [
            (y, x0, x1)
            for y in range(band.y0, band.y1)
            for x0, x1 in _runs(mask[y, :200])
            if x0 <= 10 and x1 - x0 >= 20
        ]

    for top_mask, bottom_mask in ((pal.light, pal.dark), (pal.dark, pal.light)):
        bottoms = edges(bottom_mask)
        for yt, x0, x1 in edges(top_mask):
            for yb, bx0, bx1 in bottoms:
                height = yb - yt + 1
                if (
                    14 <= height <= 40
                    and abs(bx0 - x0) <= 3
                    and abs(bx1 - x1) <= 3
                    and 1.4 <= (x1 - x0) / height <= 6
                ):
                    inside = (slice(yt + 2, yb - 1), slice(x0 + 2, x1 - 2))
                    if pal.dark[inside].mean() > 0.05 or pal.vivid[inside].mean() > 0.02:
                        return Box(x0, yt, x1, yb + 1)
    return _flag_logo(pal, band)


def _flag_logo(pal: Palette, band: Box) -> Box | None:
    """The Start button when its 1-px bevel is lost (a rescaled capture): the Windows
    flag's red, green, blue and yellow (three of them at least) beside black text,
    at the left end of the band, within one button height."""
    h = min(band.height, 40)
    box = Box(0, band.y0, min(band.width, 3 * h), band.y0 + h)
    r, g, b = (pal.rgb[box.y0 : box.y1, box.x0 : box.x1, i] for i in range(3))
    hues = [
        (r >= 160) & (g <= 100) & (b <= 100),
        (g >= 160) & (r <= 100) & (b <= 100),
        (b >= 160) & (r <= 100) & (g <= 100),
        (r >= 160) & (g >= 160) & (b <= 100),
    ]
    present = sum(int(hue.sum() >= 2) for hue in hues)
    text = pal.dark[box.y0 : box.y1, box.x0 : box.x1].mean()
    return box if present >= 3 and text >= 0.03 else None


def find_title_bars(pal: Palette, exclude: Box | None = None) -> list[TitleBar]:
    """Active window captions: blue bands 12-32 px tall set into a face-grey window
    frame (grey row above, grey column to the left), with their caption buttons."""
    height = pal.title.shape[0]
    limit = exclude.y0 if exclude and exclude.y0 > 0 else height
    counts = pal.title.sum(axis=1)
    open_bars: list[list[int]] = []  # [y0, y_end, x0, x1]: rows grouped while their runs overlap
    boxes: list[Box] = []
    for y in range(limit + 1):
        runs = []
        if y < limit and counts[y] >= 24:
            runs = [r for r in _runs(pal.title[y], max_gap=12) if r[1] - r[0] >= 48]
        still_open = []
        for bar in open_bars:
            match = next(
                (r for r in runs if min(r[1], bar[3]) - max(r[0], bar[2]) >= 0.6 * (r[1] - r[0])), None
            )
            if match:
                runs.remove(match)
                bar[1:] = [y + 1, min(bar[2], match[0]), max(bar[3], match[1])]
                still_open.append(bar)
            else:
                boxes.append(Box(bar[2], bar[0], bar[3], bar[1]))
        open_bars = still_open + [[y, y + 1, x0, x1] for x0, x1 in runs]
    return [TitleBar(box, _caption_buttons(pal, box)) for box in boxes if _is_caption(pal, box)]


def _is_caption(pal: Palette, box: Box) -> bool:
    """Set into a window frame: frame colours right above and right left of it, and
    no blue band just left of the frame (the Start menu's banner beside a selected item)."""
    if not 12 <= box.height <= 32 or box.width < 60 or box.y0 < 1 or box.x0 < 1:
        return False
    frame = pal.face | pal.light
    # One pixel further out too: a rescaled capture blends the frame's inner line.
    above = max(frame[y, box.x0 : box.x1].mean() for y in (box.y0 - 1, max(0, box.y0 - 2)))
    left = max(frame[box.y0 : box.y1, x].mean() for x in (box.x0 - 1, max(0, box.x0 - 2)))
    banner = pal.title[box.y0 : box.y1, max(0, box.x0 - 8) : box.x0 - 1].mean(axis=0).max(initial=0)
    return above > 0.8 and left > 0.6 and banner < 0.5


def _caption_buttons(pal: Palette, box: Box) -> int:
    """Count caption buttons: from the caption's right end, non-blue blocks separated by
    thin blue gaps (Minimize and Maximize touch, Close stands 2 px apart), each about
    a caption tall, until the long blue run holding the title text."""
    h = box.height
    core = pal.title[box.y0 + h // 4 : box.y1 - h // 4, box.x0 : box.x1].mean(axis=0) >= 0.5
    buttons = 0
    right = len(core)
    for start, end in reversed(_runs(core)):
        block = right - end  # non-blue columns between this blue run and the previous one
        buttons += round(block / max(h - 2, 1))
        if end - start > 4:
            break
        right = start
    return buttons
