"""Where the boot check looks: targets from text and from a clients' instances.json."""

import json

import pytest

from loco_lan.bootcheck import BootCheckResult, Target, parse_target, targets_from_instances
from loco_lan.errors import LocoError


def test_target_errors_name_the_setting():
    with pytest.raises(LocoError, match=r"^targets 'nohost': expected HOST:PORT"):
        parse_target("nohost", "targets")


def test_targets_from_instances_are_named_by_id(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps([
        {"id": "instance-0", "vncUrl": "127.0.0.1:15901", "ready": True},
        {"id": "instance-1", "vncUrl": "loco-emulator-1.loco-emulator.loco.svc.cluster.local:5901"},
    ]))
    assert targets_from_instances(path) == [
        Target("instance-0", "127.0.0.1", 15901),
        Target("instance-1", "loco-emulator-1.loco-emulator.loco.svc.cluster.local", 5901),
    ]


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read it"),
    ("{not json", "not JSON"),
    ("[]", "expected a non-empty list"),
    ('[{"id": "instance-0"}]', "entry 0 has no vncUrl"),
    ('[{"id": "instance-0", "vncUrl": "nope"}]', "instance-0 vncUrl 'nope': expected HOST:PORT"),
])
def test_bad_instances_files_fail_in_one_line(tmp_path, content, message):
    path = tmp_path / "instances.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LocoError, match=message):
        targets_from_instances(path)


def test_results_carry_their_name():
    result = BootCheckResult("127.0.0.1:41000", False, "dialog", 12.34, "a dialog", name="loco-emulator-1")
    assert result.as_dict() == {"name": "loco-emulator-1", "target": "127.0.0.1:41000", "ok": False,
                                "state": "dialog", "elapsed": 12.3, "detail": "a dialog", "screenshot": None}
    assert BootCheckResult("h:1", True, "desktop", 1, "").as_dict()["name"] == "h:1"  # unnamed: its target
