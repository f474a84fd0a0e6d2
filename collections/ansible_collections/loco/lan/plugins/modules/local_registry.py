#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_registry
short_description: Run a CNCF distribution registry on a loopback port
description:
  - Starts Debian's C(docker-registry) (the CNCF distribution registry) on 127.0.0.1
    with its storage under O(state_dir), or stops it.
  - Idempotent - a running registry is left alone. A restarted registry takes its
    previous port again when it is free, so references to it stay valid.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  state_dir:
    description: Directory holding the registry's config, storage, log and state.
    type: path
    required: true
  state:
    description: Whether the registry should be running.
    type: str
    choices: [started, stopped]
    default: started
requirements:
  - docker-registry (Debian package)
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the registry would be started or stopped.
    support: full
  diff_mode:
    description: Nothing to compare.
    support: none
"""

EXAMPLES = r"""
- name: Start a registry for the demo snapshot
  loco.lan.local_registry:
    state_dir: /var/lib/loco-lan/registry
  register: registry

- name: Use it
  ansible.builtin.debug:
    msg: "push to {{ registry.host }}/loco/qemu-snapshots:win98-demo"
"""

RETURN = r"""
host:
  description: C(127.0.0.1:port) of the running registry.
  returned: when started
  type: str
url:
  description: Base URL of the running registry.
  returned: when started
  type: str
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            state_dir=dict(type="path", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped"]),
        ),
        supports_check_mode=True,
    )
    from loco_lan.localregistry import LocalRegistry

    state_dir = module.params["state_dir"]
    running = LocalRegistry.load(state_dir)
    if module.params["state"] == "stopped":
        if running is not None and not module.check_mode:
            running.stop()
        module.exit_json(changed=running is not None)
    if module.check_mode:
        module.exit_json(changed=running is None)
    running, changed = module.call(LocalRegistry.ensure, state_dir)
    module.exit_json(changed=changed, host=running.host, url=running.url)


if __name__ == "__main__":
    main()
