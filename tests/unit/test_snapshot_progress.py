import io

from loco_lan.progress import Progress, human_bytes, human_duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_units():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 << 30) == "3.0 GiB"
    assert human_duration(75) == "1:15"
    assert human_duration(3725) == "1:02:05"


def test_plain_lines_when_not_a_terminal():
    stream, clock = io.StringIO(), Clock()
    with Progress("pulling x", 100 << 20, stream=stream, tty=False, interval=5, clock=clock) as progress:
        clock.now += 1
        progress.update(10 << 20)  # within the interval: silent
        clock.now += 4
        progress.update(40 << 20)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "pulling x 50%  50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:05",
        "pulling x 50%  50.0 MiB / 100.0 MiB  10.0 MiB/s  in 0:05",
    ]


def test_bar_on_a_terminal_redraws_in_place():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("push", 1000, stream=stream, tty=True, interval=0.2, clock=clock)
    clock.now += 1
    progress.update(250)
    progress.close()
    progress.close()  # idempotent
    text = stream.getvalue()
    assert text.startswith("\r\x1b[Kpush [######..................] 25%  250 B / 1000 B  250 B/s  ETA 0:03")
    assert text.endswith("in 0:01\n") and text.count("\n") == 1


def test_unknown_total_and_reset():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("hash", stream=stream, tty=False, interval=0, clock=clock)
    clock.now += 2
    progress.update(4096)
    progress.reset(1024)
    assert progress.done == 1024
    assert stream.getvalue() == "hash  4.0 KiB  2.0 KiB/s\n"
