"""Pure parts of the RFB client: VNC authentication's DES and the pixel decoders,
checked against bytes written out by hand from RFC 6143."""

import numpy as np
import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from loco_lan.rfb import RFBError, decode_raw, decode_zrle, vnc_response


def test_des_is_single_des():
    """The classic DES test vector (key 133457799BBCDFF1) through the same cipher setup."""
    key = bytes.fromhex("133457799BBCDFF1")
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    assert encryptor.update(bytes.fromhex("0123456789ABCDEF")).hex() == "85e813540f0ab405"


def test_vnc_response_mirrors_key_bits():
    # Mirroring each byte of 133457799BBCDFF1 gives C82CEA9ED9DD3B8F ("password" never reaches DES as is).
    password = bytes(int(f"{b:08b}"[::-1], 2) for b in bytes.fromhex("133457799BBCDFF1")).decode("latin-1")
    assert vnc_response(password, bytes.fromhex("0123456789ABCDEF") * 2).hex() == "85e813540f0ab405" * 2


def test_vnc_response_pads_and_truncates_to_eight():
    challenge = bytes(range(16))
    assert vnc_response("abc", challenge) == vnc_response("abc\0\0\0\0\0", challenge)
    assert vnc_response("abcdefgh", challenge) == vnc_response("abcdefghXYZ", challenge)
    assert vnc_response("abcdefgh", challenge) != vnc_response("abcdefgX", challenge)


def test_raw_pixels_are_bgrx():
    data = bytes([1, 2, 3, 0, 4, 5, 6, 0])  # two pixels B,G,R,X
    assert decode_raw(data, 2, 1).tolist() == [[[3, 2, 1], [6, 5, 4]]]


def cp(r, g, b) -> bytes:
    return bytes([b, g, r])  # a ZRLE CPIXEL


RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def test_zrle_solid_tiles_span_partial_edges():
    # 70x3: two tiles across (64 and 6 wide), one down
    data = b"\x01" + cp(*RED) + b"\x01" + cp(*BLUE)
    out = decode_zrle(data, 70, 3)
    assert (out[:, :64] == RED).all() and (out[:, 64:] == BLUE).all()


def test_zrle_raw_tile():
    data = b"\x00" + cp(*RED) + cp(*GREEN) + cp(*BLUE) + cp(*WHITE)
    assert decode_zrle(data, 2, 2).tolist() == [[list(RED), list(GREEN)], [list(BLUE), list(WHITE)]]


def test_zrle_packed_palette_one_bit_rows_padded():
    # 3 wide, 2 high, palette [red, blue]: rows 0b101xxxxx and 0b010xxxxx
    data = b"\x02" + cp(*RED) + cp(*BLUE) + bytes([0b10100000, 0b01000000])
    assert decode_zrle(data, 3, 2).tolist() == [
        [list(BLUE), list(RED), list(BLUE)],
        [list(RED), list(BLUE), list(RED)],
    ]


def test_zrle_packed_palette_two_and_four_bits():
    palette3 = cp(*RED) + cp(*GREEN) + cp(*BLUE)
    two_bit = decode_zrle(b"\x03" + palette3 + bytes([0b00011000]), 3, 1)  # 0,1,2 then padding
    assert two_bit.tolist() == [[list(RED), list(GREEN), list(BLUE)]]
    palette5 = palette3 + cp(*WHITE) + cp(9, 9, 9)
    four_bit = decode_zrle(b"\x05" + palette5 + bytes([0x43, 0x00]), 3, 1)  # 4,3,0
    assert four_bit.tolist() == [[[9, 9, 9], list(WHITE), list(RED)]]


def test_zrle_plain_rle_with_long_run():
    # 64x5 = 320 pixels: 300 red (run bytes 255, 44) then 20 green (19)
    data = b"\x80" + cp(*RED) + bytes([255, 44]) + cp(*GREEN) + bytes([19])
    flat = decode_zrle(data, 64, 5).reshape(-1, 3)
    assert (flat[:300] == RED).all() and (flat[300:] == GREEN).all()


def test_zrle_palette_rle_mixes_single_pixels_and_runs():
    # palette [red, green]; index 1 alone, then index 0 with run 3, then index 1 alone: 5 pixels
    data = bytes([130]) + cp(*RED) + cp(*GREEN) + bytes([1, 0x80, 2, 1])
    assert decode_zrle(data, 5, 1).tolist() == [[list(GREEN), list(RED), list(RED), list(RED), list(GREEN)]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "ends before"),
        (b"\x00" + cp(*RED), "ends inside"),
        (b"\x11", "invalid ZRLE subencoding 17"),
        (b"\x80" + cp(*RED) + bytes([9]), "overflows"),
        (bytes([130]) + cp(*RED) + cp(*GREEN) + bytes([5, 0, 0, 0]), "palette index 5 beyond its 2 colours"),
        (b"\x03" + cp(*RED) + cp(*GREEN) + cp(*BLUE) + bytes([0b11000000, 0]), "palette index 3 beyond"),
    ],
)
def test_zrle_rejects_broken_data(data, message):
    with pytest.raises(RFBError, match=message):
        decode_zrle(data, 2, 2)


def test_zrle_tile_grid_with_partial_tiles():
    width, height = 130, 70  # 3x2 tiles, the last column 2 px, the last row 6 px
    tiles = [(x, y) for y in range(0, height, 64) for x in range(0, width, 64)]
    data = b"".join(b"\x01" + cp(i, 2 * i, 3 * i) for i in range(len(tiles)))
    out = decode_zrle(data, width, height)
    for i, (x, y) in enumerate(tiles):
        assert (out[y : y + 64, x : x + 64] == (i, 2 * i, 3 * i)).all()
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
