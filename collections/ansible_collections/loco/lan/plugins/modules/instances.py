#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instances
short_description: Write config/instances.json from the live cluster
description:
  - Reads the C(<release>-emulator) StatefulSet and its pods and writes the clients'
    C(instances.json) - one entry per ordinal, ids C(instance-<ordinal>), URLs and
    readiness from the cluster - validated against the project's JSON Schema.
  - Writes atomically and only when the content changes. Creates C(active.json)
    (nothing focused) and C(hotkeys.json) (Ctrl+1..9 for the first nine instances, the VR controllers' defaults)
    when they are missing, and never overwrites them.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  config_dir:
    description: Directory of the clients' config files.
    type: path
    required: true
  stream_url:
    description:
      - Template of each instance's C(streamUrl) (Python C(str.format)). Fields - C(index),
        C(number), C(id), C(pod), C(host), C(service), C(namespace), C(release), C(vnc_port), C(health_port).
    type: str
    default: "http://{release}-streaming.{namespace}.svc.cluster.local:8443/stream/{id}"
  vnc_url:
    description: Template of C(vncUrl) (C(host:port)).
    type: str
    default: "{host}:{vnc_port}"
  health_url:
    description: Template of C(healthUrl).
    type: str
    default: "http://{host}:{health_port}"
  name:
    description: Template of each instance's display name.
    type: str
    default: "Loco {number}"
  description:
    description: Template of each instance's description.
    type: str
    default: "Windows 98 guest {number} ({pod})"
  vnc_base_port:
    description: When set, C(vnc_port) is this plus the ordinal (local port-forwards); else 5901.
    type: int
  health_base_port:
    description: When set, C(health_port) is this plus the ordinal; else 8080.
    type: int
extends_documentation_fragment:
  - loco.lan.kube
  - loco.lan.release
requirements:
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the files would change; writes nothing.
    support: full
  diff_mode:
    description: Shows instances.json before and after.
    support: full
"""

EXAMPLES = r"""
- name: Regenerate the clients' instance list
  loco.lan.instances:
    namespace: loco
    release: loco
    config_dir: "{{ playbook_dir }}/../config"

- name: Point the clients at local port-forwards
  loco.lan.instances:
    namespace: loco
    config_dir: /srv/loco/config
    vnc_url: "127.0.0.1:{vnc_port}"
    vnc_base_port: 15901
"""

RETURN = r"""
instances:
  description: The entries written to instances.json.
  returned: always
  type: list
  elements: dict
created:
  description: Companion files created because they were missing.
  returned: always
  type: list
  elements: str
  sample: [active.json, hotkeys.json]
path:
  description: Path of instances.json.
  returned: always
  type: str
"""

from pathlib import Path

from ansible_collections.loco.lan.plugins.module_utils.runtime import RELEASE_ARGS, LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            **RELEASE_ARGS,
            config_dir=dict(type="path", required=True),
            stream_url=dict(type="str",
                            default="http://{release}-streaming.{namespace}.svc.cluster.local:8443/stream/{id}"),
            vnc_url=dict(type="str", default="{host}:{vnc_port}"),
            health_url=dict(type="str", default="http://{host}:{health_port}"),
            name=dict(type="str", default="Loco {number}"),
            description=dict(type="str", default="Windows 98 guest {number} ({pod})"),
            vnc_base_port=dict(type="int"),
            health_base_port=dict(type="int"),
        ),
        kube=True,
        supports_check_mode=True,
    )
    from loco_lan import instances

    p = module.params
    urls = instances.UrlTemplates(
        stream=p["stream_url"], vnc=p["vnc_url"], health=p["health_url"], name=p["name"],
        description=p["description"], vnc_base_port=p["vnc_base_port"], health_base_port=p["health_base_port"],
    )
    try:
        entries = module.call(instances.collect, module.api(), p["namespace"], p["release"], urls)
    except KeyError as exc:
        module.fail_json(msg="unknown field %s in a URL or name template" % exc)
    written = module.call(instances.write_config, Path(p["config_dir"]), entries, check_mode=module.check_mode)
    result = dict(changed=written.changed, instances=entries, created=written.created,
                  path=str(Path(p["config_dir"]) / "instances.json"))
    if module._diff:
        result["diff"] = dict(before=written.before, after=written.after,
                              before_header="instances.json", after_header="instances.json")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
