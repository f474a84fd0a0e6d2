#!/usr/bin/python
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_cluster
short_description: Start or stop the embedded local Kubernetes control plane
description:
  - Starts a real control plane on 127.0.0.1 made of etcd, kube-apiserver,
    kube-controller-manager, kube-scheduler and kwok simulated nodes, built by
    the project's C(scripts/setup.sh), or stops it.
  - Idempotent - a healthy running cluster is left alone and reported unchanged.
  - Each I(name) has its own state directory and ports, so several clusters can
    run side by side.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  name:
    description: Name of the cluster; selects its state directory.
    type: str
    default: local
  state:
    description: Whether the cluster should be running (V(started)) or not (V(stopped)).
    type: str
    choices: [started, stopped]
    default: started
  state_root:
    description:
      - Directory holding one state directory per cluster.
      - Defaults to C(~/.local/state/loco-lan/clusters).
    type: path
  nodes:
    description: Number of kwok nodes to simulate when starting.
    type: int
    default: 3
  timeout:
    description: Seconds to wait for the control plane and nodes to be ready.
    type: int
    default: 120
  purge:
    description: With O(state=stopped), also delete the cluster's state directory (etcd data, volumes).
    type: bool
    default: false
requirements:
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the cluster would be started or stopped, without doing it.
    support: full
  diff_mode:
    description: Nothing to compare; no diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Start the local control plane
  loco.lan.local_cluster:
    name: local
  register: cluster

- name: Use it
  kubernetes.core.k8s_info:
    kubeconfig: "{{ cluster.kubeconfig }}"
    kind: Node

- name: Stop it and forget its data
  loco.lan.local_cluster:
    state: stopped
    purge: true
"""

RETURN = r"""
kubeconfig:
  description: Path of the admin kubeconfig for the cluster.
  returned: always
  type: str
  sample: /root/.local/state/loco-lan/clusters/local/kubeconfig
server:
  description: URL of the API server.
  returned: when the cluster has been started at least once
  type: str
  sample: https://127.0.0.1:39123
healthy:
  description: Whether every component is running and the API server is ready.
  returned: always
  type: bool
components:
  description: Component name to whether its process is running.
  returned: always
  type: dict
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            name=dict(type="str", default="local"),
            state=dict(type="str", default="started", choices=["started", "stopped"]),
            state_root=dict(type="path"),
            nodes=dict(type="int", default=3),
            timeout=dict(type="int", default=120),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    from loco_lan.cluster.local import LocalCluster

    params = module.params
    cluster = LocalCluster(params["name"], state_root=params["state_root"], nodes=params["nodes"])
    before = cluster.status()
    running = any(before["components"].values())
    if params["state"] == "started":
        changed = not before["healthy"]
        if changed and not module.check_mode:
            module.call(cluster.up, timeout=params["timeout"])
    else:
        changed = running or (params["purge"] and cluster.dir.exists())
        if changed and not module.check_mode:
            cluster.down(purge=params["purge"])
    module.exit_json(changed=changed, **(before if module.check_mode else cluster.status()))


if __name__ == "__main__":
    main()
