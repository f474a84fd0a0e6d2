"""The LAN hub's pure parts: QEMU's stream framing and the switch's forwarding decisions."""

import pytest

from loco_lan.emulator.lanhub import MAX_FRAME, FrameError, SwitchTable, encode_frame, split_frames

A, B, C = (bytes.fromhex(f"5254004c4f0{n}") for n in range(1, 4))
BROADCAST = b"\xff" * 6
MULTICAST = bytes.fromhex("01005e000001")
PORTS = ["a", "b", "c", "d"]


def frame(destination: bytes, source: bytes, payload: bytes = b"hello") -> bytes:
    return destination + source + b"\x08\x00" + payload


def test_encode_prefixes_the_big_endian_length():
    assert encode_frame(b"\x01\x02\x03") == b"\x00\x00\x00\x03\x01\x02\x03"


def test_split_takes_whole_frames_and_keeps_a_partial_one():
    one, two = frame(A, B), frame(B, A, b"x" * 1500)
    buffer = bytearray(encode_frame(one) + encode_frame(two)[:700])
    assert split_frames(buffer) == [one]
    assert bytes(buffer) == encode_frame(two)[:700]
    buffer += encode_frame(two)[700:]
    assert split_frames(buffer) == [two] and not buffer


def test_split_waits_for_a_whole_length_prefix():
    buffer = bytearray(b"\x00\x00")
    assert split_frames(buffer) == [] and buffer == b"\x00\x00"


def test_largest_frame_passes():
    big = bytes(MAX_FRAME)
    assert split_frames(bytearray(encode_frame(big))) == [big]


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 0xFFFFFFFF])
def test_impossible_length_is_an_error(length):
    with pytest.raises(FrameError, match=f"frame length {length} outside 1..{MAX_FRAME}"):
        split_frames(bytearray(length.to_bytes(4, "big") + b"junk"))


def test_broadcast_and_multicast_flood_to_all_others():
    table = SwitchTable()
    assert sorted(table.route(frame(BROADCAST, A), "a", PORTS, 0)) == ["b", "c", "d"]
    assert sorted(table.route(frame(MULTICAST, A), "a", PORTS, 0)) == ["b", "c", "d"]


def test_unknown_unicast_floods_then_learned_goes_to_one_port():
    table = SwitchTable()
    assert sorted(table.route(frame(B, A), "a", PORTS, 0)) == ["b", "c", "d"]
    assert table.route(frame(A, B), "b", PORTS, 1) == ["a"]  # A was learned on a
    assert table.route(frame(B, C), "c", PORTS, 2) == ["b"]  # B was learned on b


def test_frame_for_its_own_port_is_dropped():
    table = SwitchTable()
    table.route(frame(BROADCAST, A), "a", PORTS, 0)
    table.route(frame(BROADCAST, B), "a", PORTS, 0)  # two guests behind one port
    assert table.route(frame(A, B), "a", PORTS, 1) == []


def test_address_moving_to_another_port_follows_it():
    table = SwitchTable()
    table.route(frame(BROADCAST, A), "a", PORTS, 0)
    table.route(frame(BROADCAST, A), "c", PORTS, 1)
    assert table.route(frame(A, B), "b", PORTS, 2) == ["c"]


def test_addresses_age_out():
    table = SwitchTable(ageing=10)
    table.route(frame(BROADCAST, A), "a", PORTS, 0)
    assert table.route(frame(A, B), "b", PORTS, 10) == ["a"]
    assert sorted(table.route(frame(A, C), "c", PORTS, 10.5)) == ["a", "b", "d"]  # A aged out at 10
    assert table.expire(20.6) == 0  # B (10) and C (10.5) too


def test_forgotten_port_floods_again():
    table = SwitchTable()
    table.route(frame(BROADCAST, A), "a", PORTS, 0)
    table.forget("a")
    assert sorted(table.route(frame(A, B), "b", ["b", "c"], 1)) == ["c"]


def test_group_source_is_not_learned_and_runts_go_nowhere():
    table = SwitchTable()
    table.route(frame(BROADCAST, MULTICAST), "a", PORTS, 0)
    assert sorted(table.route(frame(MULTICAST, B), "b", PORTS, 1)) == ["a", "c", "d"]
    assert table.expire(1) == 1  # only B
    assert table.route(b"\xff" * 13, "a", PORTS, 1) == []


def test_full_table_makes_room_from_aged_entries_else_floods():
    table = SwitchTable(ageing=10, capacity=2)
    table.route(frame(BROADCAST, A), "a", PORTS, 0)
    table.route(frame(BROADCAST, B), "b", PORTS, 5)
    table.route(frame(BROADCAST, C), "c", PORTS, 6)  # full, nothing aged: C is not learned
    assert sorted(table.route(frame(C, B), "b", PORTS, 7)) == ["a", "c", "d"]
    table.route(frame(BROADCAST, C), "c", PORTS, 11)  # A aged out, C takes its place
    assert table.route(frame(C, B), "b", PORTS, 12) == ["c"]
