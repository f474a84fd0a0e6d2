"""hotkeys.json's schema: the files loco.lan writes fit it, the VR section's defaults live in it, and
bad bindings get a clear error from every reader (focus service, gateway)."""

import asyncio
import json
import re
from pathlib import Path

import pytest

from loco_lan import instances, schemas
from loco_lan.errors import LocoError
from loco_lan.focus.state import Catalog
from loco_lan.stream.gateway import Gateway

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "focus" / "hotkeys.json"


def test_written_and_example_files_fit_the_schema():
    written = instances.hotkeys_for([{"id": f"instance-{i}"} for i in range(3)])
    assert written["vr"] == schemas.vr_defaults()
    schemas.validate(written, "hotkeys", "written")
    schemas.validate(json.loads(EXAMPLE.read_text()), "hotkeys", "example")


def test_vr_defaults_are_the_documented_ones():
    assert schemas.vr_defaults() == {
        "a": "F1", "b": "F2", "x": "F3", "y": "menu", "trigger": "click", "grip": "zoom",
        "thumbstick-left": "previous-instance", "thumbstick-right": "next-instance",
    }


@pytest.mark.parametrize("vr, problem", [
    ({"z": "F1"}, "'z' is not one of"),
    ({"a": "F13"}, "'F13' is not valid under any"),
    ({"trigger": "Ctrl+1"}, "'Ctrl+1' is not valid"),
    ({"a": 1}, "1 is not valid"),
])
def test_bad_vr_bindings_are_named(vr, problem):
    with pytest.raises(LocoError, match=re.escape(problem)):
        schemas.validate({"vr": vr}, "hotkeys", "hotkeys.json")


def test_the_focus_service_refuses_a_bad_hotkeys_file(tmp_path):
    (tmp_path / "instances.json").write_text(json.dumps([{"id": "instance-0"}]))
    (tmp_path / "hotkeys.json").write_text(json.dumps({"focus": {"Ctrl+1": "instance-0"}, "vr": {"a": "F99"}}))
    with pytest.raises(LocoError, match=r"hotkeys file .*hotkeys.json: 'F99' is not valid .* at \['vr', 'a'\]"):
        Catalog(tmp_path / "instances.json")


def hotkeys_reply(tmp_path, content: dict | None):
    (tmp_path / "instances.json").write_text("[]")
    if content is not None:
        (tmp_path / "hotkeys.json").write_text(json.dumps(content))
    reply = asyncio.run(Gateway(tmp_path / "instances.json").get_hotkeys(None))
    return reply.status, json.loads(reply.body)


def test_the_gateway_fills_in_the_vr_defaults_and_keeps_a_users_own(tmp_path):
    status, body = hotkeys_reply(tmp_path, {"focus": {"Ctrl+1": "instance-0"}})
    assert status == 200 and body == {"focus": {"Ctrl+1": "instance-0"}, "vr": schemas.vr_defaults()}
    status, body = hotkeys_reply(tmp_path, {"vr": {"a": "Enter"}})
    assert status == 200 and body == {"vr": {"a": "Enter"}}



def test_the_gateway_without_a_hotkeys_file_still_has_the_vr_defaults(tmp_path):
    assert hotkeys_reply(tmp_path, None) == (200, {"vr": schemas.vr_defaults()})


def test_the_gateway_answers_500_naming_the_bad_binding(tmp_path):
    status, body = hotkeys_reply(tmp_path, {"vr": {"grip": "explode"}})
    assert status == 500 and "'explode' is not valid" in body["error"] and "['vr', 'grip']" in body["error"]
