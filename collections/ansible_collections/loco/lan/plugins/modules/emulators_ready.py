#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emulators_ready
short_description: Wait until a release's emulator pods are ready
description:
  - Waits, up to O(timeout) seconds, until the C(<release>-emulator) StatefulSet
    has O(count) Running and Ready pods.
  - On timeout it fails with a message naming every pod that is not ready, its phase
    and its latest events (for example C(FailedScheduling)).
  - Only reads the cluster; never reports a change.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  count:
    description: Number of ready pods to wait for; the StatefulSet's replicas when omitted.
    type: int
  timeout:
    description: Seconds to wait.
    type: int
    default: 300
extends_documentation_fragment:
  - loco.lan.kube
  - loco.lan.release
requirements:
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Waits the same way; it changes nothing in either mode.
    support: full
  diff_mode:
    description: Nothing to compare.
    support: none
"""

EXAMPLES = r"""
- name: Wait for the emulators
  loco.lan.emulators_ready:
    namespace: loco
    release: loco
    timeout: 600
"""

RETURN = r"""
pods:
  description: Names of the ready emulator pods.
  returned: success
  type: list
  elements: str
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import RELEASE_ARGS, LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            **RELEASE_ARGS,
            count=dict(type="int"),
            timeout=dict(type="int", default=300),
        ),
        kube=True,
        supports_check_mode=True,
    )
    from kubernetes import client

    from loco_lan import kube

    p = module.params
    api = module.api()
    selector = "app.kubernetes.io/component=emulator,app.kubernetes.io/instance=%s" % p["release"]
    count = p["count"]
    if count is None:
        count = module.call(client.AppsV1Api(api).read_namespaced_stateful_set,
                            "%s-emulator" % p["release"], p["namespace"]).spec.replicas
    pods = module.call(kube.wait_pods_ready, api, p["namespace"], selector, count, timeout=p["timeout"])
    module.exit_json(changed=False, pods=[pod.metadata.name for pod in pods])


if __name__ == "__main__":
    main()
