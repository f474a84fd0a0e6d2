# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every loco.lan module shares: the check that the loco-lan runtime package
(where the real work is done) is importable, the cluster connection options, and
the one error path: the runtime's LocoError, and any Kubernetes API failure, become
``fail_json`` with one clear line (what failed, on which object, what to do)."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from loco_lan.errors import LocoError
except ImportError:
    LOCO_IMPORT_ERROR = traceback.format_exc()

    class LocoError(Exception):
        """Stands in until the runtime package is installed; never raised."""

else:
    LOCO_IMPORT_ERROR = None

# Options of the loco.lan.kube documentation fragment.
KUBE_ARGS = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
)

# Options of the loco.lan.release documentation fragment.
RELEASE_ARGS = dict(
    namespace=dict(type="str", required=True),
    release=dict(type="str", default="loco"),
)


class LocoModule(AnsibleModule):
    """An AnsibleModule that fails with a clear message when loco-lan is missing.

    With ``kube=True`` it also takes the ``kubeconfig`` and ``context`` options.
    Modules import the runtime package after creating it.
    """

    def __init__(self, argument_spec, kube=False, **kwargs):
        if kube:
            argument_spec = dict(argument_spec, **KUBE_ARGS)
        super().__init__(argument_spec=argument_spec, **kwargs)
        if LOCO_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib("loco-lan"), exception=LOCO_IMPORT_ERROR)

    def api(self):
        """The Kubernetes client for the kubeconfig/context options."""
        from loco_lan import kube

        return self.call(kube.api_client, self.params["kubeconfig"], self.params["context"])

    def call(self, function, *args, **kwargs):
        """``function(*args, **kwargs)``, with a LocoError or a Kubernetes API failure turned
        into ``fail_json`` (with the error's ``reason``, when it has one)."""
        from loco_lan import kube

        try:
            return function(*args, **kwargs)
        except LocoError as exc:
            self.fail_json(msg=str(exc), reason=getattr(exc, "reason", "error"))
        except kube.API_FAILURES as exc:
            self.fail_json(msg=str(kube.api_error(exc)), reason="kube_api")
