#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_release
short_description: Install, upgrade, patch or remove a Helm release, changing only what differs
description:
  - Drives the real C(helm) binary.
  - Idempotent without the helm-diff plugin - the chart is rendered with
    C(helm upgrade --dry-run=server) and compared with the deployed manifest and
    values; the release is upgraded only when something would change.
  - With O(patch=true) the given values are merged into the values the release
    was deployed with, so one setting (for example C(emulator.diskPVC)) can be
    changed without restating the others.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  name:
    description: Release name.
    type: str
    required: true
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  chart_ref:
    description: Path of the chart directory. Required with O(state=present).
    type: path
  values:
    description: Values for the release (or, with O(patch=true), the values to change).
    type: dict
    default: {}
  patch:
    description: Merge O(values) into the deployed release's values instead of replacing them.
    type: bool
    default: false
  state:
    description: Whether the release should exist.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description: Wait until the release's resources are ready (C(helm --wait)).
    type: bool
    default: true
  wait_timeout:
    description: How long helm waits, as a Go duration.
    type: str
    default: 5m
  create_namespace:
    description: Create the namespace when it does not exist.
    type: bool
    default: true
  binary_path:
    description: Path of the helm binary; found on E(PATH) when omitted.
    type: path
extends_documentation_fragment:
  - loco.lan.kube
requirements:
  - helm (v3)
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description:
      - Plans the change and reports it without applying it; an install as well as an upgrade is
        dry-run on the API server, so check mode fails where the real run would.
    support: full
  diff_mode:
    description: Shows the release's values before and after.
    support: full
"""

EXAMPLES = r"""
- name: Deploy the Loco LAN chart
  loco.lan.helm_release:
    name: loco
    namespace: loco
    chart_ref: "{{ role_path }}/files/loco-lan"
    values:
      replicas: 3
      emulator:
        diskPVC: win98-disk
        diskReadOnly: true

- name: Point the release at another disk, keeping every other value
  loco.lan.helm_release:
    name: loco
    namespace: loco
    chart_ref: "{{ role_path }}/files/loco-lan"
    patch: true
    values:
      emulator:
        diskPVC: win98-disk-v2
"""

RETURN = r"""
action:
  description: What was (or in check mode would be) done.
  returned: always
  type: str
  sample: upgrade
release_values:
  description: The values the release has after the task.
  returned: when state is present
  type: dict
manifest_changed:
  description: Whether the rendered manifest differs from the deployed one.
  returned: when state is present
  type: bool
release:
  description: The release as C(helm list) reports it (name, namespace, revision, status, chart).
  returned: when state is present and not in check mode
  type: dict
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            chart_ref=dict(type="path"),
            values=dict(type="dict", default={}),
            patch=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="str", default="5m"),
            create_namespace=dict(type="bool", default=True),
            binary_path=dict(type="path"),
        ),
        kube=True,
        required_if=[("state", "present", ["chart_ref"])],
        supports_check_mode=True,
    )
    from loco_lan.helm import Helm

    p = module.params
    helm = module.call(Helm, kubeconfig=p["kubeconfig"], context=p["context"], binary=p["binary_path"])
    if p["state"] == "absent":
        exists = module.call(helm.release, p["name"], p["namespace"]) is not None
        if exists and not module.check_mode:
            module.call(helm.uninstall, p["name"], p["namespace"], wait=p["wait"])
        module.exit_json(changed=exists, action="uninstall" if exists else "none")
    plan = module.call(helm.plan, p["name"], p["namespace"], p["chart_ref"], p["values"], patch=p["patch"])
    result = dict(changed=plan.changed, action=plan.action, release_values=plan.values_after,
                  manifest_changed=plan.manifest_changed)
    if module._diff and plan.changed:
        result["diff"] = plan.diff()
    if not module.check_mode:
        result["release"] = module.call(helm.apply, p["name"], p["namespace"], p["chart_ref"], plan,
                                        wait=p["wait"], timeout=p["wait_timeout"],
                                        create_namespace=p["create_namespace"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
