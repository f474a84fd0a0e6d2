"""Atomic writes survive a power cut: the data and the rename are both on disk when they return."""

import os
import stat

from loco_lan import fsutil, snapshot


def synced(monkeypatch) -> list[os.stat_result]:
    seen = []
    real = os.fsync

    def fsync(fd):
        seen.append(os.fstat(fd))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_atomic_write_syncs_the_file_then_its_directory(tmp_path, monkeypatch):
    seen = synced(monkeypatch)
    fsutil.atomic_write(tmp_path / "active.json", '{"active": []}\n')
    assert (tmp_path / "active.json").read_text() == '{"active": []}\n'
    assert [stat.S_ISDIR(s.st_mode) for s in seen] == [False, True]
    assert seen[1].st_ino == tmp_path.stat().st_ino


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "instances.json"
    target.write_text("old\n")
    try:
        with fsutil.atomic_writer(target, binary=False) as handle:
            handle.write("half")
            raise OSError(28, "No space left on device")
    except OSError:
        pass
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["instances.json"]


def test_a_staged_file_syncs_its_directory_after_the_rename(tmp_path, monkeypatch):
    seen = synced(monkeypatch)
    with snapshot.staged(tmp_path / "win98.qcow2") as tmp:
        tmp.write_bytes(b"disk")
    assert (tmp_path / "win98.qcow2").read_bytes() == b"disk"
    assert stat.S_ISDIR(seen[-1].st_mode) and seen[-1].st_ino == tmp_path.stat().st_ino
