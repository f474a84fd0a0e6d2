#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: focus
short_description: Set which emulators are focused, through the loco.lan focus service
description:
  - Reads and changes the focus of a running focus service (C(loco focus serve)) over its HTTP API.
  - With O(state=exact) the focus becomes exactly O(ids), in that order (an empty list clears it).
  - With O(state=present) the O(ids) are focused as well; in single focus mode the one id replaces the focus.
  - With O(state=absent) the O(ids) are unfocused.
  - Idempotent - reported changed only when the set of focused ids changes. Ids are checked against the
    service's instances first, also in check mode.
version_added: 0.1.0
author:
  - loco.lan contributors (@loco-lan)
options:
  url:
    description: Base URL of the focus service.
    type: str
    default: http://127.0.0.1:8090
  ids:
    description: Instance ids such as C(instance-0).
    type: list
    elements: str
    default: []
  state:
    description: How O(ids) change the focus.
    type: str
    choices: [exact, present, absent]
    default: exact
  token:
    description: Bearer token the service requires for changes.
    type: str
  token_file:
    description: File holding the bearer token (the service's C(--token-file)).
    type: path
  timeout:
    description: Seconds to wait for each answer of the service.
    type: int
    default: 10
requirements:
  - loco-lan (the project's runtime package)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the focused ids before and after.
  platform:
    platforms: posix
notes:
  - Connection failures are retried a few times; refusals (unknown id, wrong token, focus full) fail at once.
"""

EXAMPLES = r"""
- name: Focus the first emulator
  loco.lan.focus:
    url: http://127.0.0.1:8090
    ids: [instance-0]
    token_file: /etc/loco/focus-token

- name: Also focus the third one (multi focus mode)
  loco.lan.focus:
    ids: [instance-2]
    state: present
    token: "{{ focus_token }}"

- name: Clear the focus
  loco.lan.focus:
    ids: []
    token_file: /etc/loco/focus-token
"""

RETURN = r"""
active:
  description: The focused ids after the task (as they would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [instance-0, instance-2]
focus:
  description: Each focused id with its tile index and hotkey, as the service reports them.
  returned: when not in check mode
  type: list
  elements: dict
  sample: [{"id": "instance-0", "index": 0, "hotkey": "Ctrl+1"}]
mode:
  description: The service's focus mode, C(single) or C(multi).
  returned: always
  type: str
  sample: multi
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def predict(state, ids, before, mode):
    """The focus the service will end up with (it decides; this is for check mode and the diff)."""
    if state == "exact":
        return list(ids)
    if state == "present":
        return list(ids) if mode == "single" else before + [i for i in ids if i not in before]
    return [i for i in before if i not in ids]


def run(module, client):
    params = module.params
    state, ids = params["state"], params["ids"]
    current = client.get()
    before, mode = current["active"], current["mode"]
    valid = [entry["id"] for entry in client.instances()]
    unknown = [i for i in ids if i not in valid]
    if unknown:
        module.fail_json(msg="unknown instance id(s): %s (valid ids: %s)" % (", ".join(unknown), ", ".join(valid)))
    if state == "present" and mode == "single" and len(ids) != 1:
        module.fail_json(msg="the service is in single focus mode: state=present takes exactly one id")
    after = predict(state, ids, before, mode)
    result = dict(changed=after != before, active=after, mode=mode)
    if result["changed"] and not module.check_mode:
        call = {"exact": client.set, "present": client.add, "absent": client.remove}[state]
        answer = call(ids)
        result.update(changed=answer["changed"], active=answer["active"], focus=answer["focus"])
    elif not module.check_mode:
        result["focus"] = current["focus"]
    if module._diff:
        result["diff"] = dict(before=dict(active=before), after=dict(active=result["active"]))
    return result


def main():
    module = LocoModule(
        argument_spec=dict(
            url=dict(type="str", default="http://127.0.0.1:8090"),
            ids=dict(type="list", elements="str", default=[]),
            state=dict(type="str", default="exact", choices=["exact", "present", "absent"]),
            token=dict(type="str", no_log=True),
            token_file=dict(type="path"),
            timeout=dict(type="int", default=10),
        ),
        mutually_exclusive=[("token", "token_file")],
        supports_check_mode=True,
    )
    from loco_lan.focus.client import FocusClient, read_token

    params = module.params
    token = module.call(read_token, params["token_file"]) if params["token_file"] else params["token"]
    module.exit_json(**module.call(run, module, FocusClient(params["url"], token, timeout=params["timeout"])))


if __name__ == "__main__":
    main()
