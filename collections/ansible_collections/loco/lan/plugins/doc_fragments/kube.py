# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How loco.lan modules reach a cluster.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file. Defaults to E(KUBECONFIG), then C(~/.kube/config),
        then the in-cluster service account.
    type: path
  context:
    description: Context of the kubeconfig to use; its current context when omitted.
    type: str
"""
