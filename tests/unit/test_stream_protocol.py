"""The input data channel's wire format (pure)."""

import pytest

from loco_lan.stream import protocol
from loco_lan.stream.protocol import InputError, Key, Pointer, Release, Wheel, decode, encode, to_pixels


@pytest.mark.parametrize("event", [Key(True, 0xFFBE), Key(False, 0x61), Pointer(5, 0, 65535), Wheel(-3, 2, 100, 200),
                                   Release()])
def test_every_event_survives_the_wire(event):
    assert decode(encode(event)) == event


def test_the_bytes_are_the_documented_ones():
    assert encode(Key(True, 0xFF0D)) == bytes([1, 1, 0, 0, 0xFF, 0x0D])
    assert encode(Pointer(1, 0x1234, 0xABCD)) == bytes([2, 1, 0x12, 0x34, 0xAB, 0xCD])
    assert encode(Wheel(1, -1, 0, 1)) == bytes([3, 1, 0xFF, 0, 0, 0, 1])
    assert encode(Release()) == b"\x04"


@pytest.mark.parametrize(("message", "error"), [
    ("text", "binary"), (b"", "empty"), (b"\x09", "unknown input op 9"), (b"\x01\x01", "takes 6 bytes, not 2"),
    (bytes([1, 2, 0, 0, 0, 1]), "bad key event"), (bytes([1, 1, 0, 0, 0, 0]), "bad key event"),
    (bytes([2, 8, 0, 0, 0, 0]), "bad pointer buttons"), (bytes([3, 100, 0, 0, 0, 0, 0]), "beyond 16"),
])
def test_anything_else_is_refused_with_a_reason(message, error):
    with pytest.raises(InputError, match=error):
        decode(message)


def test_positions_scale_to_the_guests_current_resolution():
    assert to_pixels(0, 1024) == 0 and to_pixels(protocol.SCALE, 1024) == 1023
    assert to_pixels(protocol.SCALE // 2, 640) == 319 and to_pixels(protocol.SCALE // 2, 1024) == 511
    assert to_pixels(40000, 1) == 0
