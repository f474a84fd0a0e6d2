#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: boot_check
short_description: Check that every emulator's Windows 98 reaches its desktop, over VNC
description:
  - Connects to each emulator's VNC server (RFB, security None or VNC password), keeps its screen
    current and decides from the picture whether Windows 98 shows its desktop - taskbar with the
    Start button, no dialog in front. Polls every target at once until O(timeout).
  - The targets are O(targets) (C(HOST:PORT) each), the C(vncUrl)s of a clients' O(instances) file,
    or the pods matching O(selector) in O(namespace), reached through the Kubernetes API by
    C(kubectl port-forward)s the module opens and closes itself.
  - Fails naming every target that did not reach an accepted state and the state it saw - C(desktop),
    C(dialog), C(booting), C(black), C(game), C(other) or C(no-vnc) - and saves its last screen as
    C(<name>.png) in O(screenshot_dir).
  - Only watches the screens, so it never reports a change.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  targets:
    description: VNC servers as C(HOST:PORT); a port below 100 is a display number (C(:1) is 5901).
    type: list
    elements: str
  instances:
    description: A clients' C(instances.json); every entry's C(vncUrl) is checked, named by its C(id).
    type: path
  namespace:
    description: Namespace of the emulator pods to check through port-forwards.
    type: str
  selector:
    description: Label selector of the emulator pods in O(namespace).
    type: str
    default: app.kubernetes.io/component=emulator
  vnc_port:
    description: The pods' VNC port.
    type: int
    default: 5901
  kubectl:
    description: The kubectl program that opens the port-forwards.
    type: path
    default: kubectl
  password_file:
    description: File holding the VNC password; without it, security None is expected.
    type: path
  timeout:
    description: Seconds to wait for every target to reach an accepted state.
    type: float
    default: 600
  interval:
    description: Look at each screen at most every this many seconds.
    type: float
    default: 2
  settle:
    description: Seconds an accepted state must hold, so a dialog popping up right after the desktop is caught.
    type: float
    default: 3
  accept:
    description: States that pass.
    type: list
    elements: str
    choices: [desktop, dialog, booting, black, game, other]
    default: [desktop]
  screenshot_dir:
    description: Directory for the last screen of each failing target, C(<name>.png).
    type: path
  report:
    description: Where to write the results as JSON, atomically.
    type: path
extends_documentation_fragment:
  - loco.lan.kube
requirements:
  - loco-lan (the project's runtime package)
  - kubectl, for O(namespace)
attributes:
  check_mode:
    description:
      - Runs the same check, which changes nothing on the emulators. Screenshots and the report are
        written in check mode too - they are the task's output.
    support: full
  diff_mode:
    description: Nothing to compare; no diff is returned.
    support: none
"""

EXAMPLES = r"""
- name: Check every emulator pod of the release, through the Kubernetes API
  loco.lan.boot_check:
    kubeconfig: "{{ loco_kubeconfig }}"
    namespace: loco
    timeout: 900
    screenshot_dir: reports/boot

- name: Check the instances a live-access run made reachable on this machine
  loco.lan.boot_check:
    instances: config/instances.json
    password_file: ~/.config/loco/vnc-password

- name: Check one VNC server, accepting a dialog in front of the desktop
  loco.lan.boot_check:
    targets: [127.0.0.1:5901]
    accept: [desktop, dialog]
"""

RETURN = r"""
ok:
  description: Whether every target reached an accepted state.
  returned: always
  type: bool
  sample: false
states:
  description: The state each target was last seen in, by name.
  returned: always
  type: dict
  sample: {"loco-emulator-0": "desktop", "loco-emulator-1": "dialog"}
results:
  description:
    - One entry per target - C(name), C(target) (C(HOST:PORT) checked), C(ok), C(state), C(elapsed)
      seconds, C(detail) (why the detector decided so) and C(screenshot) (the PNG path, null when passed
      or no screen was ever seen).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "loco-emulator-1", "target": "127.0.0.1:41235", "ok": false, "state": "dialog",
            "elapsed": 60.2, "detail": "a dialog title bar in front of the desktop",
            "screenshot": "reports/boot/loco-emulator-1.png"}]
table:
  description: The results as text lines, one per target.
  returned: always
  type: list
  elements: str
  sample: ["loco-emulator-0  desktop  ok after 4.1s", "loco-emulator-1  dialog   FAILED after 60.2s: ..."]
"""

import json

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule

STATES = ["desktop", "dialog", "booting", "black", "game", "other"]


def run(params):
    from loco_lan import bootcheck

    options = dict(password=bootcheck.read_password(params["password_file"], "password_file"),
                   timeout=params["timeout"], interval=params["interval"], settle=params["settle"],
                   accept=tuple(params["accept"]), screenshot_dir=params["screenshot_dir"])
    if params["namespace"]:
        return bootcheck.check_pods(params["namespace"], params["selector"], kubeconfig=params["kubeconfig"],
                                    context=params["context"], kubectl=params["kubectl"],
                                    vnc_port=params["vnc_port"], **options)
    if params["instances"]:
        targets = bootcheck.targets_from_instances(params["instances"])
    else:
        targets = [bootcheck.Target(text, *bootcheck.parse_target(text, "targets")) for text in params["targets"]]
    return bootcheck.check_targets(targets, **options)


def table(results):
    width = max(len(r["name"]) for r in results)
    lines = []
    for r in results:
        verdict = "ok after %.1fs" % r["elapsed"] if r["ok"] else "FAILED after %.1fs: %s" % (r["elapsed"], r["detail"])
        if r["screenshot"]:
            verdict += "; last screen in %s" % r["screenshot"]
        lines.append("%s  %-7s  %s" % (r["name"].ljust(width), r["state"], verdict))
    return lines


def checked(params):
    """Every target's result, and the report written when asked for."""
    from loco_lan.fsutil import atomic_write

    results = [result.as_dict() for result in run(params)]
    ok = all(result["ok"] for result in results)
    if params["report"]:
        atomic_write(params["report"], json.dumps({"ok": ok, "results": results}, indent=2) + "\n")
    return ok, results


def main():
    module = LocoModule(
        argument_spec=dict(
            targets=dict(type="list", elements="str"),
            instances=dict(type="path"),
            namespace=dict(type="str"),
            selector=dict(type="str", default="app.kubernetes.io/component=emulator"),
            vnc_port=dict(type="int", default=5901),
            kubectl=dict(type="path", default="kubectl"),
            password_file=dict(type="path", no_log=False),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=2),
            settle=dict(type="float", default=3),
            accept=dict(type="list", elements="str", choices=STATES, default=["desktop"]),
            screenshot_dir=dict(type="path"),
            report=dict(type="path"),
        ),
        kube=True,
        mutually_exclusive=[("targets", "instances", "namespace")],
        required_one_of=[("targets", "instances", "namespace")],
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] <= 0 or params["interval"] <= 0 or params["settle"] < 0:
        module.fail_json(msg="timeout and interval must be positive, settle not negative")
    ok, results = module.call(checked, params)
    output = dict(changed=False, ok=ok, results=results, table=table(results),
                  states=dict((r["name"], r["state"]) for r in results))
    if not ok:
        failed = ["%s: %s (%s)" % (r["name"], r["state"], r["detail"]) for r in results if not r["ok"]]
        module.fail_json(msg="boot check failed for %d of %d: %s" % (len(failed), len(results), "; ".join(failed)),
                         **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
