"""Small bootable disks the project builds itself: one 512-byte boot sector of
hand-encoded x86 real-mode code that paints a screen and halts.

The boot-check tests boot these screens; the local demo boots :mod:`loco_lan.demoguest`,
which draws the same desktop and also moves, answers input and makes sound.

``paint_sector`` switches QEMU's standard VGA to 640x480x8 through the Bochs VBE
registers (banked, window at A000:0000), loads a small palette and fills a list of
rectangles: enough to draw the shapes of a Windows 98 desktop (teal background,
taskbar, Start button, a dialog) that the screen detector reads from structure.
``pattern_sector`` sets VGA mode 13h and fills it with a many-coloured pattern.

Source of ``PAINT_CODE`` (GNU as, ``.code16``, linked at 0x7c00; y, x1, y1,
colour and bank are words at 0x7000-0x7008)::

      cli; xor ax,ax; mov ds,ax; mov ss,ax; mov sp,0x7c00; cld
      mov dx,0x3c8; out dx,al; inc dx          ; DAC write index 0
      mov si,palette; mov cx,30; rep outsb     ; 10 colours, 6-bit RGB
      mov cx,5                                 ; 5 (index, value) VBE register writes
  1:  lodsw; mov dx,0x1ce; out dx,ax; lodsw; inc dx; out dx,ax; loop 1b
      push 0xa000; pop es
  next_rect:
      lodsw; cmp ax,0xffff; je halt; mov bp,ax ; x0
      lodsw; mov [y],ax; lodsw; mov [x1],ax; lodsw; mov [y1],ax; lodsb; mov [colour],al
  row:
      mov ax,[y]; cmp ax,[y1]; jae next_rect
      mov bx,640; mul bx; add ax,bp; adc dx,0  ; dx:ax = y*640 + x0
      mov di,ax; call set_bank                 ; bank = dx
      mov cx,[x1]; sub cx,bp; mov al,[colour]
  pix:
      stosb; test di,di; jnz 2f                ; crossed into the next 64 KiB bank?
      mov dx,[bank]; inc dx; call set_bank
  2:  loop pix
      inc word [y]; jmp row
  set_bank:
      push ax; push dx; mov [bank],dx
      mov ax,5; mov dx,0x1ce; out dx,ax; pop ax; push ax; inc dx; out dx,ax
      pop dx; pop ax; ret
  halt:
      sti
  3:  hlt; jmp 3b
"""

import struct
import subprocess
from pathlib import Path

PAINT_CODE = bytes.fromhex(
    "fa31c08ed88ed0bc007cfcbac803ee42be8f7cb91e00f36eb90500adbace01efad42efe2f66800a007ad83f8ff745c89c5"
    "ada30070ada30270ada30470aca20670a100703b06047073dfbb8002f7e301e883d20089c7e81e008b0e027029e9a00670"
    "aa85ff75088b16087042e80800e2f1ff060070ebca505289160870b80500bace01ef585042ef5a58c3fbf4ebfd"
)
assert len(PAINT_CODE) == 0x8F and PAINT_CODE[0x10:0x13] == b"\xbe\x8f\x7c"  # mov si,0x7c8f (the palette)
WAIT_KEY = bytes.fromhex("30e4cd16")  # xor ah,ah; int 0x16: wait for a key press

# Source of PATTERN_CODE: cli; cld; mov ax,0x13; int 0x10; push 0xa000; pop es; xor di,di;
# mov cx,64000; 1: mov ax,di; shr al,5; xor al,ah; stosb; loop 1b; sti; 2: hlt; jmp 2b
PATTERN_CODE = bytes.fromhex("fafcb81300cd106800a00731ffb900fa89f8c0e80530e0aae2f6fbf4ebfd")

# Palette indices (6-bit DAC values).
TEAL, FACE, WHITE, BLACK, SHADOW, NAVY, RED, GREEN, BLUE, YELLOW = range(10)
PALETTE = [
    (0, 32, 32),
    (48, 48, 48),
    (63, 63, 63),
    (0, 0, 0),
    (32, 32, 32),
    (0, 0, 32),
    (63, 0, 0),
    (0, 48, 0),
    (0, 0, 63),
    (63, 63, 0),
]
VBE_640x480x8 = [(4, 0), (1, 640), (2, 480), (3, 8), (4, 1)]  # disable, set mode, enable (banked)

TASKBAR = [
    (0, 452, 640, 480, FACE),
    (0, 453, 640, 454, WHITE),
    # Start button: raised bevel, flag, caption
    (2, 454, 56, 455, WHITE),
    (2, 454, 3, 476, WHITE),
    (2, 475, 56, 476, BLACK),
    (55, 454, 56, 476, BLACK),
    (3, 474, 55, 475, SHADOW),
    (54, 455, 55, 475, SHADOW),
    (6, 459, 12, 464, RED),
    (12, 459, 18, 464, GREEN),
    (6, 464, 12, 469, BLUE),
    (12, 464, 18, 469, YELLOW),
    (22, 462, 50, 468, BLACK),
    # tray: sunken box with a clock
    (560, 456, 636, 457, SHADOW),
    (560, 456, 561, 476, SHADOW),
    (560, 475, 636, 476, WHITE),
    (635, 456, 636, 476, WHITE),
    (600, 462, 628, 469, BLACK),
]
DIALOG = [
    (200, 150, 440, 300, FACE),
    (200, 151, 439, 152, WHITE),
    (201, 151, 202, 299, WHITE),
    (438, 151, 439, 299, SHADOW),
    (439, 150, 440, 300, BLACK),
    (201, 298, 439, 299, SHADOW),
    (200, 299, 440, 300, BLACK),
    (204, 154, 436, 172, NAVY),
    (210, 158, 260, 167, WHITE),  # caption and its text
    (418, 156, 434, 170, FACE),
    (418, 156, 433, 157, WHITE),
    (418, 156, 419, 169, WHITE),  # Close button
    (418, 169, 434, 170, BLACK),
    (433, 156, 434, 170, BLACK),
    (423, 160, 429, 166, BLACK),
]
SCREENS = {
    "desktop": (TEAL, TASKBAR),
    "dialog": (TEAL, DIALOG + TASKBAR),  # the taskbar last: the shell is never seen without its dialog
    "no-shell": (TEAL, DIALOG),
    "black": (BLACK, []),
}


def paint_sector(
    background: int, rects: list[tuple[int, int, int, int, int]], wait_key: bool = False
) -> bytes:
    """A boot sector painting ``rects`` (x0, y0, x1, y1, colour) over ``background``;
    with ``wait_key`` it first stays in text mode until a key is pressed."""
    code = PAINT_CODE
    if wait_key:  # xor ah,ah; int 0x16 -- and the palette moves 4 bytes on
        code = WAIT_KEY + code[:0x11] + struct.pack("<H", 0x7C8F + len(WAIT_KEY)) + code[0x13:]
    palette = list(PALETTE)
    palette[0], palette[background] = palette[background], palette[0]  # memory clears to colour 0
    swap = {0: background, background: 0}
    body = code + bytes(v for rgb in palette for v in rgb)
    body += b"".join(struct.pack("<HH", index, value) for index, value in VBE_640x480x8)
    body += b"".join(struct.pack("<HHHHB", x0, y0, x1, y1, swap.get(c, c)) for x0, y0, x1, y1, c in rects)
    body += b"\xff\xff"
    return _sector(body)


def pattern_sector() -> bytes:
    return _sector(PATTERN_CODE)


def _sector(body: bytes) -> bytes:
    if len(body) > 510:
        raise ValueError(f"boot sector body is {len(body)} bytes, more than 510")
    return body.ljust(510, b"\0") + b"\x55\xaa"


def make_disk(path: Path, sector: bytes) -> Path:
    """A qcow2 image whose first sector is ``sector``."""
    raw = path.with_suffix(".raw")
    raw.write_bytes(sector)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path
