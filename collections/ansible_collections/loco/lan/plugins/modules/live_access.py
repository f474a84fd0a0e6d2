#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: live_access
short_description: Supervised port-forwards to every emulator, for local use
description:
  - Starts (or stops) a detached supervisor keeping one C(kubectl port-forward) per
    emulator port running, restarting any that exits and following the StatefulSet when
    it is scaled.
  - Instance C(i) is reachable at O(address) on O(vnc_base_port)+C(i) (VNC) and
    O(health_base_port)+C(i) (health); the streaming gateway (web client, streams and focus API),
    when the release runs one, on O(web_port).
  - With O(player_url_file), writes there the gateway's URL carrying the player token (mode 0600),
    so the token never appears in the play's output.
  - Refuses local ports already in use, and returns once every port listens (fails after
    O(timeout) naming the ports that do not, with the end of the supervisor's log).
  - Idempotent - a supervisor already running the same configuration is left alone.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  state:
    description: Whether the port-forwards should run.
    type: str
    choices: [started, stopped]
    default: started
  address:
    description: Local address the ports listen on.
    type: str
    default: 127.0.0.1
  vnc_base_port:
    description: Local VNC port of instance-0; instance C(i) gets this plus C(i).
    type: int
    default: 15901
  health_base_port:
    description: Local health port of instance-0; instance C(i) gets this plus C(i).
    type: int
    default: 18080
  web_port:
    description: Local port of the streaming gateway; V(0) forwards none.
    type: int
    default: 18443
  player_url_file:
    description: File to write the player's URL (with the token) to.
    type: path
  state_dir:
    description: Where the supervisor's state and log are kept.
    type: path
    required: true
  kubectl:
    description: The kubectl program.
    type: path
    default: kubectl
  timeout:
    description: Seconds to wait for every port to listen.
    type: int
    default: 60
extends_documentation_fragment:
  - loco.lan.kube
  - loco.lan.release
requirements:
  - kubectl
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the supervisor would be started or stopped.
    support: full
  diff_mode:
    description: Nothing to compare.
    support: none
"""

EXAMPLES = r"""
- name: Make the emulators reachable on this machine
  loco.lan.live_access:
    namespace: loco
    state_dir: ~/.local/state/loco-lan/live
"""

RETURN = r"""
log:
  description: Log file of the supervisor.
  returned: when started
  type: str
ports:
  description: The local ports that now listen, VNC ones first, then the gateway's.
  returned: when started
  type: list
  elements: int
  sample: [15901, 15902, 18080, 18081, 18443]
web_url:
  description: The gateway's local URL (the web client; watching needs no token).
  returned: when started and the release runs a gateway
  type: str
  sample: http://127.0.0.1:18443/
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import RELEASE_ARGS, LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            **RELEASE_ARGS,
            state=dict(type="str", default="started", choices=["started", "stopped"]),
            address=dict(type="str", default="127.0.0.1"),
            vnc_base_port=dict(type="int", default=15901),
            health_base_port=dict(type="int", default=18080),
            web_port=dict(type="int", default=18443),
            player_url_file=dict(type="path"),
            state_dir=dict(type="path", required=True),
            kubectl=dict(type="path", default="kubectl"),
            timeout=dict(type="int", default=60),
        ),
        kube=True,
        supports_check_mode=True,
    )
    from loco_lan.liveaccess import LiveAccess, LiveConfig

    p = module.params
    config = LiveConfig(namespace=p["namespace"], release=p["release"], kubeconfig=p["kubeconfig"],
                        context=p["context"], address=p["address"], vnc_base_port=p["vnc_base_port"],
                        health_base_port=p["health_base_port"], web_port=p["web_port"] or None,
                        kubectl=p["kubectl"])
    live = LiveAccess(config, p["state_dir"])
    if p["state"] == "stopped":
        changed = bool(live.state())
        if changed and not module.check_mode:
            live.stop()
        module.exit_json(changed=changed)
    if module.check_mode:
        module.exit_json(changed=not live.running())
    changed = module.call(live.start, p["timeout"])
    result = dict(log=str(live.log_file), ports=module.call(live.ports))
    if module.call(live.gateway):
        result["web_url"] = config.web_url
        if p["player_url_file"]:
            from pathlib import Path

            from loco_lan import kube
            from loco_lan.liveaccess import write_player_url

            api = module.call(kube.api_client, p["kubeconfig"], p["context"])
            changed |= module.call(write_player_url, api, config, Path(p["player_url_file"]))
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
