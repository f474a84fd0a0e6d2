"""Exec stdin frames are masked exactly as RFC 6455 and websocket-client say."""

import os

import pytest
from websocket import ABNF

from loco_lan.kube import StdinFrame, xor_mask


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 1 << 20])
def test_numpy_mask_matches_the_reference(size):
    key, data = os.urandom(4), os.urandom(size)
    assert xor_mask(key, data) == ABNF.mask(key, data)


def test_a_stdin_frame_formats_like_websocket_clients_own():
    payload = b"\x00" + os.urandom(70000)  # long enough for the 64-bit length form
    key = os.urandom(4)
    ours, reference = StdinFrame(payload), ABNF(fin=1, opcode=ABNF.OPCODE_BINARY, data=payload)
    ours.get_mask_key = reference.get_mask_key = lambda _length: key
    assert ours.format() == reference.format()
