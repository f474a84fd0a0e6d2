"""instances.json logic: pod states, hotkeys, writes that keep users' edits."""

import json
from types import SimpleNamespace as NS

import pytest

from loco_lan import instances
from loco_lan.errors import LocoError


def pod(phase="Running", ready=True, waiting=None, deleting=False):
    return NS(
        metadata=NS(deletion_timestamp="now" if deleting else None),
        status=NS(phase=phase, conditions=[NS(type="Ready", status="True" if ready else "False")],
                  container_statuses=[NS(state=NS(waiting=NS(reason=waiting) if waiting else None))]),
    )


@pytest.mark.parametrize(("the_pod", "expected"), [
    (None, (False, "booting")),
    (pod(), (True, "ready")),
    (pod(ready=False), (False, "booting")),
    (pod(phase="Pending", ready=False), (False, "booting")),
    (pod(ready=False, waiting="CrashLoopBackOff"), (False, "error")),
    (pod(phase="Failed", ready=False), (False, "error")),
    (pod(deleting=True), (False, "booting")),
])
def test_pod_status(the_pod, expected):
    assert instances.pod_status(the_pod) == expected


def entries(count):
    return [{"id": f"instance-{i}", "name": f"Loco {i + 1}", "description": "", "streamUrl": f"/stream/instance-{i}",
             "vncUrl": f"h{i}:5901", "healthUrl": f"http://h{i}:8080", "provisioned": True, "ready": True,
             "status": "ready"} for i in range(count)]


def test_hotkeys_bind_the_first_nine():
    keys = instances.hotkeys_for(entries(11))["focus"]
    assert keys == {f"Ctrl+{i}": f"instance-{i - 1}" for i in range(1, 10)}


def test_write_config_changes_only_what_differs_and_keeps_user_files(tmp_path):
    first = instances.write_config(tmp_path, entries(3))
    assert first.changed and sorted(first.created) == ["active.json", "hotkeys.json"]
    assert json.loads((tmp_path / "active.json").read_text()) == {"active": [], "seq": 0}
    (tmp_path / "hotkeys.json").write_text('{"focus": {"F1": "instance-2"}}\n')  # a user's edit
    again = instances.write_config(tmp_path, entries(3))
    assert not again.changed and again.created == []
    scaled = instances.write_config(tmp_path, entries(5))
    assert scaled.changed
    assert len(json.loads((tmp_path / "instances.json").read_text())) == 5
    assert json.loads((tmp_path / "hotkeys.json").read_text()) == {"focus": {"F1": "instance-2"}}


def test_check_mode_writes_nothing(tmp_path):
    result = instances.write_config(tmp_path, entries(2), check_mode=True)
    assert result.changed and list(tmp_path.iterdir()) == []


def test_schema_rejects_a_bad_entry():
    bad = entries(1)
    bad[0]["status"] = "sleeping"
    with pytest.raises(LocoError, match="instances.json would be invalid"):
        instances.validate(bad)
    instances.validate(entries(2))


@pytest.mark.parametrize("url", ["ws://loco-emulator-0.loco-emulator:8080/stream", "/s", "http://gw/stream/"])
def test_a_stream_url_not_of_the_gateways_shape_is_refused(url):
    bad = entries(1)
    bad[0]["streamUrl"] = url
    with pytest.raises(LocoError, match="streamUrl"):
        instances.validate(bad)


def test_stream_urls_of_the_gateway_pass_absolute_or_relative():
    good = entries(2)
    good[1]["streamUrl"] = "https://loco.example/stream/instance-1"
    instances.validate(good)
