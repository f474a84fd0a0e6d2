"""The RFB client over real sockets: against the minimal test server (labelled
screens, every ZRLE subencoding, CopyRect, DesktopSize, 3.3/3.8, VNC auth) and
against real QEMU (ZRLE frames equal Raw frames, resizes across a reset)."""

import asyncio
import socket
import threading

import numpy as np
import pytest
from rfbserver import fixture_screen

from loco_lan.rfb import DESKTOP_SIZE, RAW, RFBAuthError, RFBClient, RFBError
from loco_lan.screen import analyse

COPY_RECT = 1


def run(coroutine):
    return asyncio.run(coroutine)


async def grab(port: int, password: str | None = None, **options) -> np.ndarray:
    async with await RFBClient.connect("127.0.0.1", port, password, timeout=10, **options) as client:
        return await client.refresh()


@pytest.mark.parametrize("use_zrle", [True, False], ids=["zrle", "raw"])
@pytest.mark.parametrize("name", ["d0.png", "L0c.png", "w0-radio.png"])
def test_labelled_screens_arrive_pixel_exact(screen_server, name, use_zrle):
    image = fixture_screen(name)
    server = screen_server(image, use_zrle=use_zrle)
    assert np.array_equal(run(grab(server.port)), image)
    assert server.server.encodings_sent[16 if use_zrle else RAW] >= 1


def test_every_zrle_subencoding_decodes(screen_server):
    rng = np.random.default_rng(7)
    height, width = 150, 200  # partial tiles on the right and at the bottom
    image = np.zeros((height, width, 3), np.uint8)
    image[:64, :64] = (10, 20, 30)  # solid
    image[:64, 64:128] = np.where(rng.random((64, 64, 1)) < 0.5, 0, 255)  # 2 colours, short runs: packed
    levels = rng.integers(0, 4, (64, 72)) * 60
    image[:64, 128:] = np.stack([levels, levels // 2, 255 - levels], axis=2)  # 4 colours: packed, 2 bits
    ramp = np.repeat(np.arange(100, dtype=np.uint8), 41)[: 64 * 64].reshape(64, 64)
    image[64:128, :64] = np.stack([ramp, ramp, ramp], axis=2)  # 100 colours in long runs: palette RLE
    shades = np.repeat(np.arange(200, dtype=np.uint8), 21)[: 64 * 64].reshape(64, 64)
    image[64:128, 64:128] = np.stack([shades, 255 - shades, shades], axis=2)  # 200 colours in runs: plain RLE
    image[64:, 128:] = rng.integers(0, 256, (86, 72, 3))  # noise: raw
    image[128:, :128] = (200, 100, 0)  # a 22-px-high row of solid tiles
    server = screen_server(image)
    assert np.array_equal(run(grab(server.port)), image)
    assert set(server.server.subencodings) == {"solid", "packed-palette", "palette-rle", "plain-rle", "raw"}


def test_desktop_size_change_then_full_repaint(screen_server):
    booting = fixture_screen("w0-cancel.png")  # 640x480
    desktop = fixture_screen("d0.png")  # 1024x768
    server = screen_server(booting)

    async def scenario():
        async with await RFBClient.connect("127.0.0.1", server.port, timeout=10) as client:
            assert np.array_equal(await client.refresh(), booting)
            server.do(server.server.show, desktop)
            seen = []
            async for update in client.updates(timeout=10):
                seen.append(update.resized)
                if not update.resized:
                    break
            return seen, client.framebuffer.copy()

    seen, frame = run(scenario())
    assert seen == [True, False]
    assert np.array_equal(frame, desktop)
    assert server.server.encodings_sent[DESKTOP_SIZE] == 1


def test_copy_rect_moves_pixels(screen_server):
    image = fixture_screen("d0.png")
    server = screen_server(image)

    async def scenario():
        async with await RFBClient.connect("127.0.0.1", server.port, timeout=10) as client:
            await client.refresh()
            server.do(server.server.move, (0, 0, 100, 150), (500, 300))  # icons to the middle
            update = await client.poll(10)
            return update, client.framebuffer.copy()

    update, frame = run(scenario())
    assert [rect.encoding for rect in update.rects] == [COPY_RECT]
    assert np.array_equal(frame, server.server.image)
    assert np.array_equal(frame[300:450, 500:600], image[:150, :100])


@pytest.mark.parametrize("version", [3, 7, 8])
def test_vnc_authentication(screen_server, version):
    image = fixture_screen("d0.png")
    server = screen_server(image, password="pa55word", version=version)
    assert np.array_equal(run(grab(server.port, "pa55word")), image)
    with pytest.raises(RFBAuthError, match="rejected"):
        run(grab(server.port, "wrong"))
    with pytest.raises(RFBAuthError, match="requires a VNC password"):
        run(grab(server.port))


@pytest.mark.parametrize("version", [3, 7])
def test_older_protocols_without_password(screen_server, version):
    image = fixture_screen("L0c.png")
    server = screen_server(image, version=version)

    async def scenario():
        async with await RFBClient.connect("127.0.0.1", server.port, timeout=10) as client:
            return client.version, await client.refresh()

    negotiated, frame = run(scenario())
    assert negotiated == (3, version) and np.array_equal(frame, image)


def test_input_events_reach_the_server(screen_server):
    server = screen_server(fixture_screen("d0.png"))

    async def scenario():
        async with await RFBClient.connect("127.0.0.1", server.port, timeout=10) as client:
            await client.pointer(20, 750, buttons=1)
            await client.pointer(20, 750)
            await client.press(0xFF0D)  # Return
            await client.refresh()  # a round trip: the events before it have arrived

    run(scenario())
    assert server.server.events == [
        ("pointer", 1, 20, 750),
        ("pointer", 0, 20, 750),
        ("key", 0xFF0D, True),
        ("key", 0xFF0D, False),
    ]


def test_server_going_away_ends_the_session(screen_server):
    server = screen_server(fixture_screen("d0.png"))

    async def scenario():
        client = await RFBClient.connect("127.0.0.1", server.port, timeout=5)
        await client.refresh()
        server.stop()
        with pytest.raises(RFBError, match="lost"):
            await client.poll(5)
        await client.close()

    run(scenario())


def test_closed_port_and_strangers_fail_clearly():
    with socket.create_server(("127.0.0.1", 0)) as silent, socket.create_server(("127.0.0.1", 0)) as http:
        closed = socket.create_server(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()

        def answer_http():
            connection, _ = http.accept()
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            connection.close()

        threading.Thread(target=answer_http, daemon=True).start()
        with pytest.raises(RFBError, match="cannot connect to VNC"):
            run(grab(closed_port))
        with pytest.raises(RFBError, match="is not a VNC server"):
            run(grab(http.getsockname()[1]))
        with pytest.raises(RFBError, match="timed out after 0.5s"):
            run(RFBClient.connect("127.0.0.1", silent.getsockname()[1], timeout=0.5))


async def settled_frame(client: RFBClient, size: tuple[int, int]) -> np.ndarray:
    """The screen once it has the given size and two full grabs agree."""
    previous = None
    for _ in range(100):
        frame = await client.refresh()
        if frame.shape[:2] == size and previous is not None and np.array_equal(frame, previous):
            return frame
        previous = frame
        await asyncio.sleep(0.1)
    raise AssertionError(f"screen did not settle at {size}")


@pytest.mark.qemu
@pytest.mark.parametrize(("disk", "size"), [("pattern", (400, 640)), ("dialog", (480, 640))])
def test_qemu_zrle_frames_equal_raw_frames(emulator, boot_disks, disk, size):
    emu = emulator(boot_disks[disk])
    emu.wait_healthy()

    async def scenario():
        async with (
            await RFBClient.connect("127.0.0.1", emu.vnc_port, timeout=10) as zrle,
            await RFBClient.connect(
                "127.0.0.1", emu.vnc_port, timeout=10, encodings=(RAW, DESKTOP_SIZE)
            ) as raw,
        ):
            return await settled_frame(zrle, size), await settled_frame(raw, size), zrle.name

    zrle, raw, name = run(scenario())
    assert np.array_equal(zrle, raw)
    assert len(np.unique(zrle.reshape(-1, 3), axis=0)) > 4
    assert name == "QEMU (loco-instance-0)"


@pytest.mark.qemu
def test_qemu_key_press_switches_mode_and_the_client_follows(emulator, boot_disks):
    """The guest waits in text mode for a key; the client's key event reaches it, the
    boot sector switches to 640x480 and the client follows the DesktopSize change."""
    emu = emulator(boot_disks["key-then-desktop"])
    emu.wait_healthy()

    async def scenario():
        async with await RFBClient.connect("127.0.0.1", emu.vnc_port, timeout=10) as client:
            text = await settled_frame(client, (400, 720))
            await client.press(0xFF0D)  # Return
            resized = False
            async for update in client.updates(timeout=20):
                resized |= update.resized
                if (client.height, client.width) == (480, 640) and not update.resized:
                    return text, resized, await settled_frame(client, (480, 640))

    text, resized, frame = run(scenario())
    assert resized
    assert tuple(frame[240, 320]) == (0, 128, 128)  # the teal painted by the boot sector
    assert analyse(text).state == "booting" and not analyse(text).black  # SeaBIOS's text
    assert analyse(frame).state == "desktop"
