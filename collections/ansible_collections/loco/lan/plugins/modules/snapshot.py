#!/usr/bin/python
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: snapshot
short_description: Pull or publish the Windows 98 disk snapshot through an OCI registry
description:
  - With O(state=pulled), makes O(path) hold the qcow2 snapshot O(reference) names. Both
    published forms are read - a container image whose tar layer (plain, gzip or zstd) holds
    a C(*.qcow2), and an OCI artifact whose layer is the qcow2 itself.
  - Every blob is verified against its sha256 while it streams, an interrupted download resumes
    where it stopped, and C(qemu-img check) runs before the image is renamed into place; a
    failed pull leaves an existing image untouched.
  - A qcow2 layer downloads into a partial file beside O(path), fsynced and recorded every
    64 MiB, so a pull that dies or is killed is resumed by the next run (RV(resumed_from));
    what an earlier pull left that cannot be resumed (a tar layer's temp file, another
    digest's partial) is removed.
  - Idempotent - the manifest digest is recorded in C(<path>.snapshot.json) and nothing is
    downloaded when it matches (the file's size and modification time must match too).
  - With O(state=pushed), publishes the qcow2 at O(path) to O(reference) as an OCI artifact,
    unless the tag already holds exactly that disk.
  - On failure the result carries RV(reason) - V(unreachable), V(not_found), V(auth),
    V(integrity), V(bad_image) or V(error) - so a play can fall back to rebuilding.
version_added: 0.1.0
author:
  - loco.lan contributors (@loco-lan)
options:
  reference:
    description:
      - C(registry/repository:tag), or C(registry/repository@sha256:<digest>) to pin one build.
    type: str
    default: ghcr.io/mroie/qemu-snapshots:win98-base
  path:
    description:
      - With O(state=pulled), where the qcow2 goes; with O(state=pushed), the qcow2 to publish.
    type: path
    required: true
  state:
    description: Pull the snapshot to O(path) (V(pulled)) or publish O(path) (V(pushed)).
    type: str
    choices: [pulled, pushed]
    default: pulled
  path_in_image:
    description:
      - Path of the qcow2 inside the image's tar layer.
      - By default the image must hold exactly one C(*.qcow2).
    type: str
  force:
    description: Pull even when the recorded digest matches.
    type: bool
    default: false
  source:
    description: With O(state=pushed), where the image came from (C(org.opencontainers.image.source)).
    type: str
  chunk_size:
    description:
      - With O(state=pushed), upload in resumable chunks of this many MiB; V(0) sends one request.
    type: int
    default: 0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - loco.lan.registry
requirements:
  - loco-lan (the project's runtime package)
  - qemu-img
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the recorded manifest digest before and after a pull.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Pull the default snapshot
  loco.lan.snapshot:
    path: /var/lib/loco/win98.qcow2
  register: disk

- name: Pin one build from a private registry
  loco.lan.snapshot:
    reference: "registry.example.com/loco/snapshots@{{ win98_digest }}"
    path: /var/lib/loco/win98.qcow2
    username: loco
    password: "{{ registry_password }}"

- name: Publish a rebuilt snapshot
  loco.lan.snapshot:
    state: pushed
    path: /var/lib/loco/win98.qcow2
    reference: ghcr.io/mroie/qemu-snapshots:win98-base
    source: https://github.com/mroie/lego-loco-cluster
    username: mroie
    password: "{{ ghcr_token }}"
"""

RETURN = r"""
action:
  description: V(pulled), V(pushed), or V(current) when nothing had to move; in check mode, what would happen.
  returned: always
  type: str
  sample: pulled
path:
  description: The qcow2 on the managed host.
  returned: always
  type: str
reference:
  description: The reference pulled from or pushed to.
  returned: always
  type: str
digest:
  description: Digest of the manifest the reference resolves to (use it to pin with C(@)).
  returned: always (null when a push is only planned in check mode)
  type: str
  sample: sha256:5be36cd5bf66a0cb06cd97d751a57505493d7695bcf7e9756734aa7c950a2f8b
sha256:
  description: sha256 of the qcow2 file.
  returned: when known (not for a pull planned in check mode)
  type: str
size:
  description: Size of the qcow2 file in bytes.
  returned: when known
  type: int
virtual_size:
  description: Virtual disk size in bytes, from C(qemu-img info).
  returned: when known
  type: int
resumed_from:
  description:
    - Bytes an earlier pull of the same qcow2 layer had safely written before it died or was
      killed, which this pull kept (0 when it started from the beginning).
  returned: always
  type: int
reason:
  description:
    - On failure, its kind - V(unreachable), V(not_found), V(auth), V(integrity), V(bad_image) or V(error).
  returned: failure
  type: str
"""

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def run(module):
    from loco_lan import snapshot
    from loco_lan.oci import Client, Credentials

    params = module.params
    credentials = Credentials.resolve(params["username"], params["password"], token=params["token"])
    client = Client(
        credentials,
        plain_http=params["insecure_http"],
        ca_bundle=params["ca_bundle"],
        timeout=params["timeout"],
        retries=params["retries"],
    )
    if params["state"] == "pushed":
        return snapshot.push(
            params["path"],
            params["reference"],
            client=client,
            source=params["source"],
            chunk_size=params["chunk_size"] << 20,
            check_mode=module.check_mode,
        )
    return snapshot.pull(
        params["reference"],
        params["path"],
        client=client,
        member=params["path_in_image"],
        force=params["force"],
        check_mode=module.check_mode,
    )


def main():
    module = LocoModule(
        argument_spec=dict(
            reference=dict(type="str", default="ghcr.io/mroie/qemu-snapshots:win98-base"),
            path=dict(type="path", required=True),
            state=dict(type="str", default="pulled", choices=["pulled", "pushed"]),
            path_in_image=dict(type="str"),
            force=dict(type="bool", default=False),
            source=dict(type="str"),
            chunk_size=dict(type="int", default=0),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            token=dict(type="str", no_log=True),
            ca_bundle=dict(type="path"),
            insecure_http=dict(type="bool", default=False),
            timeout=dict(type="float", default=30),
            retries=dict(type="int", default=4),
        ),
        supports_check_mode=True,
    )
    from loco_lan import snapshot

    before = snapshot.read_record(module.params["path"]).get("digest")
    result = module.call(run, module)
    outcome = result.as_dict()
    if module._diff and module.params["state"] == "pulled":
        outcome["diff"] = dict(before=dict(digest=before), after=dict(digest=result.digest))
    module.exit_json(changed=result.changed, **outcome)


if __name__ == "__main__":
    main()
