#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: demo_disk
short_description: Build the small bootable demo disk
description:
  - Writes a small qcow2 whose boot sector paints a Windows 98-like desktop (teal
    background, taskbar, Start button) and halts, so a Loco LAN can be brought up,
    booted and checked end to end where the real Windows 98 snapshot cannot be had.
  - The image is built the same way every time; an existing one with the same content
    is left alone.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  path:
    description: Where the qcow2 goes.
    type: path
    required: true
requirements:
  - qemu-img
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the disk would be (re)built.
    support: full
  diff_mode:
    description: Nothing to compare.
    support: none
"""

EXAMPLES = r"""
- name: Build the demo disk
  loco.lan.demo_disk:
    path: /var/cache/loco-lan/images/demo/win98-demo.qcow2
"""

RETURN = r"""
path:
  description: Path of the demo disk.
  returned: always
  type: str
sha256:
  description: Digest of the demo disk.
  returned: always
  type: str
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def main():
    module = LocoModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    from loco_lan import demodisk

    path = module.params["path"]
    changed, sha256 = module.call(demodisk.ensure, path, check_mode=module.check_mode)
    module.exit_json(changed=changed, path=path, sha256=sha256)


if __name__ == "__main__":
    main()
