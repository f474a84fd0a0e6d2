"""JSON Schemas of the files loco.lan writes and reads (``<name>.schema.json``)."""

import json
from functools import cache
from importlib import resources

import jsonschema

from loco_lan.errors import LocoError


@cache
def schema(name: str) -> dict:
    return json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text())


def validate(document, name: str, what: str) -> None:
    """LocoError ``<what>: <the first problem> at <path>`` unless ``document`` fits schema ``name``."""
    # The first problem as found, not jsonschema's best match: that descends into anyOf branches
    # and reports a regular expression where "not valid under any of the given schemas" is meant.
    errors = sorted(jsonschema.Draft202012Validator(schema(name)).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        raise LocoError(f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}")


def vr_defaults() -> dict:
    """The VR controllers' default bindings, kept as the schema's ``default`` (one home)."""
    return dict(schema("hotkeys")["properties"]["vr"]["default"])
