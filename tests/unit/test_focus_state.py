"""Focus rules: single/multi, validation, persistence (pure logic on temp files)."""

import json

import pytest

from loco_lan.errors import LocoError
from loco_lan.focus.state import Catalog, FocusRequestError, FocusState


@pytest.fixture
def catalog(tmp_path):
    (tmp_path / "instances.json").write_text(json.dumps([{"id": f"instance-{i}"} for i in range(4)]))
    (tmp_path / "hotkeys.json").write_text(
        json.dumps(
            {"focus": {"Ctrl+1": "instance-0", "Ctrl+3": "instance-2", "Alt+3": "instance-2"}, "zoom": {}}
        )
    )
    return Catalog(tmp_path / "instances.json")


def test_single_mode_replaces_and_rejects_two(tmp_path, catalog):
    state = FocusState(tmp_path / "active.json", catalog, "single", max_active=9)
    assert state.max_active == 1
    assert state.change(state.plan_set(["instance-1"]))
    assert state.plan_add(["instance-2"]) == ("instance-2",)
    with pytest.raises(FocusRequestError, match="at most 1"):
        state.plan_set(["instance-1", "instance-2"])


def test_multi_mode_add_remove_and_full(tmp_path, catalog):
    state = FocusState(tmp_path / "active.json", catalog, "multi", max_active=2)
    state.change(state.plan_add(["instance-3"]))
    state.change(state.plan_add(["instance-0", "instance-3"]))
    assert state.active == ("instance-3", "instance-0")
    with pytest.raises(FocusRequestError) as full:
        state.plan_add(["instance-1"])
    assert full.value.status == 409
    assert state.plan_remove(["instance-3", "instance-1"]) == ("instance-0",)


def test_unknown_and_malformed_ids_list_the_valid_ones(tmp_path, catalog):
    state = FocusState(tmp_path / "active.json", catalog)
    with pytest.raises(FocusRequestError) as unknown:
        state.plan_set(["instance-9"])
    assert unknown.value.status == 400
    assert unknown.value.details["valid"] == [f"instance-{i}" for i in range(4)]
    for bad in ("instance-0", [1], None, ["instance-0", "instance-0"]):
        with pytest.raises(FocusRequestError):
            state.plan_set(bad)


def test_document_carries_index_and_hotkey(tmp_path, catalog):
    state = FocusState(tmp_path / "active.json", catalog, "multi", 3)
    state.change(("instance-2", "instance-1"))
    doc = state.document()
    assert doc["active"] == ["instance-2", "instance-1"]
    assert doc["focus"] == [
        {"id": "instance-2", "index": 2, "hotkey": "Ctrl+3"},  # the first binding in the file wins
        {"id": "instance-1", "index": 1, "hotkey": None},
    ]
    assert doc["seq"] == 1


def test_change_numbers_and_save_persists(tmp_path, catalog):
    path = tmp_path / "active.json"
    state = FocusState(path, catalog)
    assert not state.change(())
    assert state.change(("instance-1",))
    assert not path.exists()  # saving is a separate, explicit step
    state.save()
    assert json.loads(path.read_text()) == {"active": ["instance-1"], "seq": 1}
    again = FocusState(path, catalog)
    assert (again.active, again.seq) == (("instance-1",), 1)


def test_failed_save_leaves_the_file_as_it_was(tmp_path, catalog, monkeypatch):
    path = tmp_path / "active.json"
    state = FocusState(path, catalog)
    state.change(("instance-1",))
    state.save()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("loco_lan.focus.state.atomic_write", disk_full)
    state.change(("instance-2",))
    with pytest.raises(LocoError, match="cannot save.*No space"):
        state.save()
    assert json.loads(path.read_text()) == {"active": ["instance-1"], "seq": 1}


def test_bad_state_file_and_vanished_ids_on_load(tmp_path, catalog, caplog):
    path = tmp_path / "active.json"
    path.write_text("{not json")
    assert FocusState(path, catalog).active == ()
    path.write_text(json.dumps({"active": ["instance-9", "instance-1", "instance-2"], "seq": 7}))
    state = FocusState(path, catalog, "multi", 4)
    assert (state.active, state.seq) == (("instance-1", "instance-2"), 7)
    assert "unknown ids" in caplog.text


def test_catalog_reloads_and_keeps_last_good(tmp_path, catalog):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps([{"id": "instance-0"}, {"id": "instance-7"}]))
    assert list(catalog.instances) == ["instance-0", "instance-7"]
    path.write_text('[{"id": 3}]')
    assert list(catalog.instances) == ["instance-0", "instance-7"]


def test_catalog_rejects_bad_files(tmp_path):
    (tmp_path / "instances.json").write_text('[{"id": "a"}, {"id": "a"}]')
    with pytest.raises(LocoError, match="twice"):
        Catalog(tmp_path / "instances.json")
    with pytest.raises(LocoError, match="does not exist"):
        Catalog(tmp_path / "missing.json")
