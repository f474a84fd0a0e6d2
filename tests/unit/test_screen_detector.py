"""The Windows 98 screen detector: accuracy on the labelled real screens, and
held-out layouts it never saw (real chrome pixels recomposed at other resolutions
on the default teal background), plus synthetic boot-phase frames."""

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from loco_lan.cli import main
from loco_lan.screen import STATES, analyse, classify

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "win98-screens"
TEAL = (0, 128, 128)


def labelled() -> list[tuple[str, str]]:
    with open(FIXTURES / "labels.csv", newline="") as handle:
        return [(row["file"], row["label"]) for row in csv.DictReader(handle)]


def fixture(name: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / name).convert("RGB"))


def test_accuracy_on_labelled_screens():
    hits, totals, misses = Counter(), Counter(), []
    for name, label in labelled():
        state = classify(FIXTURES / name)
        assert state in STATES
        totals[label] += 1
        if state == label:
            hits[label] += 1
        else:
            misses.append(f"{name}: {label} seen as {state}")
    for label in sorted(totals):
        print(f"{label:15s} {hits[label]:3d}/{totals[label]:<3d} {hits[label] / totals[label]:6.1%}")
    overall = sum(hits.values()) / sum(totals.values())
    print(f"{'overall':15s} {sum(hits.values()):3d}/{sum(totals.values()):<3d} {overall:6.1%}")
    print("\n".join(misses))
    assert overall >= 0.9
    assert all(hits[label] / totals[label] >= 0.75 for label in totals)


@pytest.mark.parametrize("size", [(640, 480), (800, 600), (1280, 960)])
def test_accuracy_on_rescaled_captures(size):
    """The same screens scaled (bilinear): 1-px bevels blur, the taskbar is 17-35 px tall."""
    results = [
        (label, classify(np.asarray(Image.open(FIXTURES / name).convert("RGB").resize(size, Image.BILINEAR))))
        for name, label in labelled()
    ]
    hits = sum(label == state for label, state in results)
    print(f"{size[0]}x{size[1]}: {hits}/{len(results)} {hits / len(results):.1%}")
    assert hits / len(results) >= 0.9


# Held-out layouts: the detector's rules were written against the labelled
# screens; these recompose their real chrome (taskbar ends, dialogs, windows) on
# the default teal wallpaper at resolutions the set does not contain.


def taskbar_strip(width: int) -> np.ndarray:
    """d0's 28-px taskbar, its empty middle stretched or cut to ``width``."""
    strip = fixture("d0.png")[-28:]
    left, right = strip[:, :250], strip[:, -230:]
    middle = np.repeat(strip[:, 400:401], width - left.shape[1] - right.shape[1], axis=1)
    return np.concatenate([left, middle, right], axis=1)


def compose(size, taskbar=True, paste=(), background=TEAL) -> np.ndarray:
    width, height = size
    screen = np.empty((height, width, 3), np.uint8)
    screen[:] = background
    if taskbar:
        screen[-28:] = taskbar_strip(width)
    for name, (x0, y0, x1, y1) in paste:
        part = fixture(name)[y0:y1, x0:x1]
        top = (height - 28 - part.shape[0]) // 2
        left = (width - part.shape[1]) // 2
        screen[top : top + part.shape[0], left : left + part.shape[1]] = part
    return screen


ICONS = ("d0.png", (0, 0, 90, 150))
NETWORK_DIALOG = ("n0-id.png", (132, 132, 499, 592))  # caption with ? and X
ERROR_BOX = ("r1-a.png", (200, 343, 830, 469))  # caption with X only
LOGON_BOX = ("scr0-before.png", (90, 62, 549, 259))
IPCONFIG_WINDOW = ("w1-combo.png", (330, 264, 693, 504))  # ordinary window: _ [] X


LAYOUTS = {
    "desktop": (True, [], "desktop"),
    "window": (True, [IPCONFIG_WINDOW], "desktop"),
    "dialog": (True, [NETWORK_DIALOG], "desktop-dialog"),
    "error-box": (True, [ERROR_BOX], "desktop-dialog"),
    "bare-wallpaper": (False, [], "booting"),
    "logon": (False, [LOGON_BOX], "booting"),
    "error-no-shell": (False, [ERROR_BOX], "booting"),
}


def fits(size, paste) -> bool:
    return all(x1 - x0 <= size[0] and y1 - y0 <= size[1] - 28 for _, (x0, y0, x1, y1) in paste)


# Every layout at every size its parts fit in (the 630-px error box does not fit 640x480 with room).
@pytest.mark.parametrize(
    ("size", "taskbar", "paste", "expected"),
    [
        pytest.param(size, *layout, id=f"{name}-{size[0]}x{size[1]}")
        for name, layout in LAYOUTS.items()
        for size in [(640, 480), (800, 600), (1152, 864), (1280, 1024)]
        if fits(size, layout[1])
    ],
)
def test_held_out_layouts(size, taskbar, paste, expected):
    screen = compose(size, taskbar, paste)
    assert analyse(screen).state == expected, analyse(screen).reason


def test_double_height_and_top_docked_taskbars():
    tall = compose((800, 600), taskbar=False)
    tall[-56:-28] = taskbar_strip(800)
    tall[-28:] = taskbar_strip(800)[-1]  # a second, empty row of taskbar
    assert classify(tall) == "desktop"
    top = compose((800, 600), taskbar=False)
    top[:28] = taskbar_strip(800)
    assert classify(top) == "desktop"


def test_start_menu_open_keeps_the_shell():
    """With the Start menu open the button is pressed: its bevel flips."""
    screen = compose((800, 600))
    button = screen[-25:-2, 2:56].copy()
    screen[-25:-2, 2:56] = button[::-1]
    assert classify(screen) == "desktop"


@pytest.mark.parametrize("name", ["L0c.png", "w0x.png", "bk0a.png"])
@pytest.mark.parametrize("size", [(640, 480), (800, 600)])
def test_game_at_other_resolutions(name, size):
    screen = np.asarray(Image.open(FIXTURES / name).convert("RGB").resize(size, Image.LANCZOS))
    assert classify(screen) == "game"


def test_wallpaper_from_the_set_with_a_teal_shell_elsewhere():
    """The labelled set's wallpaper with the taskbar removed is a boot screen."""
    screen = fixture("d0.png").copy()
    screen[-28:] = screen[-60:-32][::-1]
    assert classify(screen) == "booting"


def text_screen(size, background, ink) -> np.ndarray:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(
        ["SeaBIOS (version 1.16)", "Booting from Hard Disk...", "Starting Windows 98..."]
    ):
        draw.text((8, 8 + 16 * row), line, fill=ink)
    return np.asarray(image)


def test_black_screen_is_booting_and_flagged():
    result = analyse(np.zeros((600, 800, 3), np.uint8))
    assert (result.state, result.black) == ("booting", True)


@pytest.mark.parametrize("size", [(720, 400), (640, 400), (640, 480)])
def test_text_mode_is_booting(size):
    result = analyse(text_screen(size, (0, 0, 0), (170, 170, 170)))
    assert result.state == "booting" and not result.black


def test_blue_text_screen_is_other():
    assert classify(text_screen((720, 400), (0, 0, 170), (255, 255, 255))) == "other"


def test_bare_teal_screen_is_booting():
    assert classify(np.full((600, 800, 3), TEAL, np.uint8)) == "booting"


def test_tiny_frame_is_other():
    assert classify(np.zeros((32, 32, 3), np.uint8)) == "other"


def test_classify_command_prints_one_line_per_file(capsys):
    files = [str(FIXTURES / "d0.png"), str(FIXTURES / "L0c.png")]
    assert main(["screen", "classify", *files]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{files[0]}\tdesktop", f"{files[1]}\tgame"]


def test_classify_command_rejects_a_non_image(tmp_path, capsys):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    assert main(["screen", "classify", str(bogus)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.png" in err
