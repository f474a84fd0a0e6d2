# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Which Loco LAN a module works on.
    DOCUMENTATION = r"""
options:
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  release:
    description: Helm release name; its emulators are the StatefulSet C(<release>-emulator).
    type: str
    default: loco
"""
