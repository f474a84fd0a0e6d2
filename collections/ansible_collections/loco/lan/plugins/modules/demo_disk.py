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
  - Writes a small qcow2 that boots in a second on the snapshot's hardware and paints a
    Windows 98-like desktop (teal background, taskbar, Start button) with a demo window, so a
    Loco LAN can be brought up, booted, streamed, played and checked end to end where the real
    Windows 98 snapshot cannot be had.
  - The guest moves (a bouncing square and a frame counter), shows every key and click it gets
    (a click leaves a marker where it happened) and plays a PC-speaker tone on F9; see the
    C(loco_lan.demoguest) module of the runtime package.
  - With O(guest=lan) the disk is the test guest instead (C(loco_lan.testguest)) - a small Linux
    with a network stack on the same hardware, which takes 192.168.10.<ordinal+10>, answers ARP,
    ping and the DirectPlay ports and serves a guest channel for the network checks, and shows the
    same demo program on its screen.
  - The image is built the same way every time; an existing one with the same content
    (for the test guest - built from the same inputs) is left alone.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  path:
    description: Where the qcow2 goes.
    type: path
    required: true
  guest:
    description:
      - V(screen) - the demo program on bare metal (boots in a second; no network stack).
      - V(lan) - the test guest (boots in seconds under TCG; on the game LAN).
    type: str
    choices: [screen, lan]
    default: screen
requirements:
  - qemu-img
  - gcc and binutils (the guest's program is compiled on the controller)
  - for O(guest=lan) - gcc-multilib, syslinux, mtools, dosfstools and the i386 kernel and busybox packages
    C(scripts/setup.sh) downloads
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

- name: Build the test guest, which joins the game LAN
  loco.lan.demo_disk:
    path: /var/cache/loco-lan/images/demo/testguest.qcow2
    guest: lan
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
    module = LocoModule(argument_spec=dict(path=dict(type="path", required=True),
                                           guest=dict(type="str", choices=["screen", "lan"], default="screen")),
                        supports_check_mode=True)
    from loco_lan import demoguest, testguest

    path = module.params["path"]
    builder = testguest if module.params["guest"] == "lan" else demoguest
    changed, sha256 = module.call(builder.ensure, path, check_mode=module.check_mode)
    module.exit_json(changed=changed, path=path, sha256=sha256)


if __name__ == "__main__":
    main()
