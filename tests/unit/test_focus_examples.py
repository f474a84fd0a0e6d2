"""The deployment examples in examples/focus match what the code needs (the playbook and the JSON files
are also run for real by tests/integration/focus)."""

from pathlib import Path

import yaml

from loco_lan.focus.quota import RBAC_RULES
from loco_lan.focus.state import Catalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "focus"


def test_rbac_example_grants_exactly_what_the_kubernetes_backend_calls():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((EXAMPLES / "rbac.yaml").read_text())}
    assert docs["Role"]["rules"] == RBAC_RULES
    assert docs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "loco-focus"}]
    assert docs["RoleBinding"]["roleRef"]["name"] == docs["Role"]["metadata"]["name"]


def test_example_instances_bind_every_focus_hotkey():
    instances = Catalog(EXAMPLES / "instances.json").instances
    assert [(i.id, i.index, i.hotkey) for i in instances.values()] == [
        (f"instance-{n}", n, f"Ctrl+{n + 1}") for n in range(4)
    ]
