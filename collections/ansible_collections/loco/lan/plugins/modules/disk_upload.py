#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_upload
short_description: Upload a disk image into a PersistentVolumeClaim, verified and only when needed
description:
  - Ensures the PVC (sized for two copies of the image plus headroom, since a
    replacement is written beside the image it replaces), starts a short-lived
    uploader pod mounting it and streams the image through the Kubernetes API
    (C(exec) stdin) into a part file.
  - The part file is fsynced and its sha256 computed from the bytes on the volume
    before it is renamed over the final name; the digest is recorded as the PVC
    annotation C(loco.lan/disk-sha256).
  - When the annotation already matches the image, nothing is sent (C(changed=false)).
  - An interrupted transfer resumes from the part file's size. A volume without room
    for the image fails before sending, saying how much more is needed; a failed
    write (the volume full) or a digest mismatch removes the part file and leaves the
    previous image untouched.
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  image:
    description: Path of the local disk image (qcow2).
    type: path
    required: true
  pvc:
    description: Name of the PersistentVolumeClaim to create or fill.
    type: str
    required: true
  namespace:
    description: Namespace of the PVC.
    type: str
    required: true
  file_name:
    description:
      - Name of the image inside the volume - a plain file name (letters, digits, C(._+-), not
        starting with a dot); anything else is refused.
    type: str
    default: win98.qcow2
  storage_class:
    description: Storage class of a new PVC; the cluster's default class when omitted.
    type: str
  access_modes:
    description:
      - Access modes of a new PVC. The upload writes the claim, so it needs a writable mode;
        V(ReadOnlyMany) alone is refused (CSI drivers publish such a volume read-only).
      - V(ReadWriteOnce) suits a single node, or node-local storage such as local-path (every
        pod using the claim is then scheduled on its node); V(ReadWriteMany) several nodes.
        Either way the emulators mount it read-only and share one base image.
    type: list
    elements: str
    default: [ReadWriteOnce]
  size:
    description: Minimum size of a new PVC (for example V(4Gi)); the image size plus headroom when larger.
    type: str
  headroom_percent:
    description: Space added to the image size when sizing a new PVC.
    type: int
    default: 10
  uploader_image:
    description:
      - Image of the uploader pod; it needs C(sh), C(cat), C(df), C(sync), C(wc), C(mv), and
        C(sha256sum) or C(openssl) (used when present, being faster).
    type: str
    default: docker.io/library/busybox:1.36
  expected_sha256:
    description:
      - Digest the image must have once in the cluster (for example the snapshot's recorded digest).
      - 64 hex digits, optionally after C(sha256:) (the form M(loco.lan.snapshot) returns).
      - When omitted it is computed from the local file; when given, the local file is not
        hashed at all (the check inside the cluster still compares every byte received).
    type: str
  timeout:
    description: Seconds to wait for the uploader pod to become ready.
    type: int
    default: 300
extends_documentation_fragment:
  - loco.lan.kube
requirements:
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Reports whether the PVC would be created and the image uploaded; sends nothing.
    support: full
  diff_mode:
    description: Shows the digest recorded on the PVC before and after.
    support: full
"""

EXAMPLES = r"""
- name: Upload the Windows 98 disk into the cluster
  loco.lan.disk_upload:
    image: /var/cache/loco/win98.qcow2
    pvc: win98-disk
    namespace: loco
    access_modes: [ReadWriteMany]
"""

RETURN = r"""
action:
  description: V(uploaded), V(current) (already there, nothing sent) or V(would-upload) (check mode).
  returned: always
  type: str
sha256:
  description: Digest of the image, as verified in the cluster.
  returned: always
  type: str
size:
  description: Size of the image in bytes.
  returned: always
  type: int
pvc_created:
  description: Whether the PVC was (or would be) created.
  returned: always
  type: bool
previous_sha256:
  description: Digest recorded on the PVC before this run, if any.
  returned: always
  type: str
resumed_from:
  description: Byte offset an interrupted earlier transfer was resumed from.
  returned: always
  type: int
sent:
  description: Bytes sent by this run.
  returned: always
  type: int
"""

from pathlib import Path

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule


def main():
    module = LocoModule(
        argument_spec=dict(
            image=dict(type="path", required=True),
            pvc=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            file_name=dict(type="str", default="win98.qcow2"),
            storage_class=dict(type="str"),
            access_modes=dict(type="list", elements="str", default=["ReadWriteOnce"]),
            size=dict(type="str"),
            headroom_percent=dict(type="int", default=10),
            uploader_image=dict(type="str", default="docker.io/library/busybox:1.36"),
            expected_sha256=dict(type="str"),
            timeout=dict(type="int", default=300),
        ),
        kube=True,
        supports_check_mode=True,
    )
    from loco_lan.diskupload import SHA_ANNOTATION, DiskUploader, UploadRequest

    p = module.params
    request = module.call(
        UploadRequest, image=Path(p["image"]), pvc=p["pvc"], namespace=p["namespace"], file_name=p["file_name"],
        storage_class=p["storage_class"], access_modes=tuple(p["access_modes"]), size=p["size"],
        headroom=p["headroom_percent"] / 100, uploader_image=p["uploader_image"],
        expected_sha256=p["expected_sha256"], timeout=p["timeout"],
    )
    uploader = DiskUploader(module.api(), request)
    result = module.call(uploader.run, check_mode=module.check_mode).as_dict()
    if module._diff and result["changed"]:
        result["diff"] = {"before": {SHA_ANNOTATION: result["previous_sha256"]},
                          "after": {SHA_ANNOTATION: result["sha256"]}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
