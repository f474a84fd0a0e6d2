"""Decide what a Windows 98 guest's screen shows.

States:
- ``desktop``: the shell is up (taskbar with its Start button), no modal dialog in front;
- ``desktop-dialog``: the shell is up but an active dialog (a caption with at most
  the Help and Close buttons, or none) is in front;
- ``booting``: no shell yet: black or text-mode screens, the splash, a desktop
  background without taskbar, with or without setup/logon/error boxes;
- ``game``: a full-screen program (LEGO Loco) covers the screen;
- ``other``: a text-mode screen on a blue background (a Windows fatal error) or a
  frame too small to judge.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from loco_lan.errors import LocoError
from loco_lan.screen.chrome import Box, Palette, TitleBar, find_taskbar, find_title_bars

STATES = ("desktop", "desktop-dialog", "booting", "game", "other")


@dataclass
class Analysis:
    state: str
    black: bool = False
    taskbar: Box | None = None
    start_button: Box | None = None
    title_bars: list[TitleBar] = field(default_factory=list)
    reason: str = ""


def load_image(source: "str | Path | Image.Image | np.ndarray") -> np.ndarray:
    """An HxWx3 uint8 RGB array from a path, a Pillow image or an array."""
    if isinstance(source, np.ndarray):
        array = source
    else:
        if not isinstance(source, Image.Image):
            try:
                with Image.open(source) as opened:
                    source = opened.convert("RGB")
            except (OSError, ValueError) as exc:
                raise LocoError(f"{source}: not a readable image ({exc})") from exc
        array = np.asarray(source.convert("RGB"))
    if array.ndim != 3 or array.shape[2] < 3:
        raise LocoError(f"expected an RGB image, got an array of shape {array.shape}")
    return np.ascontiguousarray(array[..., :3], dtype=np.uint8)


def classify(source) -> str:
    return analyse(source).state


def analyse(source) -> Analysis:
    rgb = load_image(source)
    height, width = rgb.shape[:2]
    if height < 64 or width < 64:
        return Analysis("other", reason=f"frame too small ({width}x{height})")
    pal = Palette(rgb)
    black = bool((pal.hi > 32).mean() <= 0.001)  # a blinking cursor at most
    if black:
        return Analysis("booting", black=True, reason="black screen")

    shell = find_taskbar(pal)
    taskbar, start = shell or (None, None)
    titles = find_title_bars(pal, exclude=taskbar)
    if shell:
        dialogs = [t for t in titles if t.buttons <= 2]
        if dialogs:
            return Analysis(
                "desktop-dialog",
                taskbar=taskbar,
                start_button=start,
                title_bars=titles,
                reason=f"taskbar, and a dialog caption at {_where(dialogs[0].box)}",
            )
        return Analysis(
            "desktop",
            taskbar=taskbar,
            start_button=start,
            title_bars=titles,
            reason="taskbar with Start button, no dialog in front",
        )

    state, reason = _without_shell(rgb, pal, titles)
    return Analysis(state, title_bars=titles, reason=reason)


def _without_shell(rgb: np.ndarray, pal: Palette, titles: list[TitleBar]) -> tuple[str, str]:
    """No taskbar: a boot phase (Windows' own screens: flat background, grey chrome)
    or a full-screen program (colourful, detailed art)."""
    height, width = pal.hi.shape
    share, colour = _dominant_colour(rgb)
    if height < 480 or width < 640:
        # VGA text or splash modes; Windows' GUI and the game need at least 640x480.
        r, g, b = colour
        if share >= 0.5 and b >= 128 and r < 64 and g < 64:
            return "other", f"{width}x{height} text mode on blue (fatal error screen)"
        return "booting", f"{width}x{height} VGA text/splash mode"
    if titles:
        if share >= 0.35:
            return "booting", f"window caption over a flat background ({share:.0%} one colour), no taskbar"
        return "game", f"window caption over detailed full-screen art ({share:.0%} one colour)"
    background = np.all((rgb >> 4) == (np.array(colour) >> 4), axis=2)
    art = pal.vivid & ~background
    art_share = art.sum() / max(int((~background).sum()), 1)
    if share >= 0.5:
        if art_share >= 0.3 and art.mean() >= 0.008:
            return "game", f"colourful picture on a flat background ({art_share:.0%} of the rest vivid)"
        return "booting", f"flat background ({share:.0%} one colour), no taskbar"
    detail = _detail(rgb)
    if detail < 0.015:
        return "booting", f"smooth full-screen picture (detail {detail:.3f}), no taskbar: splash or wallpaper"
    return "game", f"detailed full-screen art (detail {detail:.3f}, {share:.0%} one colour)"


def _dominant_colour(rgb: np.ndarray) -> tuple[float, tuple[int, int, int]]:
    """Share and colour of the most common colour, quantised to 4 bits per channel
    so 16-bit guest colour and dithering do not split it."""
    q = (rgb >> 4).astype(np.int32)
    keys = (q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]
    counts = np.bincount(keys.ravel(), minlength=4096)
    key = int(counts.argmax())
    colour = ((key >> 8) * 16 + 8, ((key >> 4) & 15) * 16 + 8, (key & 15) * 16 + 8)
    return counts[key] / keys.size, colour


def _detail(rgb: np.ndarray) -> float:
    """Share of strong horizontal edges, sampled on a 640x480 grid whatever the resolution."""
    height, width = rgb.shape[:2]
    rows = np.linspace(0, height - 1, 480).astype(int)
    columns = np.linspace(0, width - 1, 640).astype(int)
    grey = rgb[np.ix_(rows, columns)].mean(axis=2)
    return float((np.abs(np.diff(grey, axis=1)) > 24).mean())


def _where(box: Box) -> str:
    return f"{box.x0},{box.y0} ({box.width}x{box.height})"
