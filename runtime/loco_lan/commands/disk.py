"""``loco disk upload``: put a disk image into a PVC through the Kubernetes API."""

import json
from pathlib import Path

from loco_lan import kube
from loco_lan.diskupload import DiskUploader, UploadRequest
from loco_lan.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser("disk", help="manage disk images in the cluster")
    actions = parser.add_subparsers(dest="action", required=True)
    upload = actions.add_parser("upload", help="upload a qcow2 into a PVC (skipped when already there)")
    upload.add_argument("image", type=Path, help="local qcow2 file")
    upload.add_argument("--pvc", required=True, help="PersistentVolumeClaim to create or fill")
    upload.add_argument("--namespace", "-n", default="default")
    upload.add_argument("--kubeconfig")
    upload.add_argument("--context")
    upload.add_argument("--file-name", default="win98.qcow2", help="name of the image inside the volume")
    upload.add_argument("--storage-class", help="storage class of a new PVC (default: the cluster's)")
    upload.add_argument("--access-mode", action="append", dest="access_modes",
                        help="access mode of a new PVC (repeatable; default ReadWriteOnce)")
    upload.add_argument("--size", help="minimum size of a new PVC, e.g. 4Gi (default: image + 10%% + 64Mi)")
    upload.add_argument("--uploader-image", default=UploadRequest.uploader_image,
                        help="image of the uploader pod (needs sh, cat, wc, sha256sum, mv)")
    upload.add_argument("--expected-sha256", help="digest the image must have in the cluster")
    upload.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the uploader pod")
    upload.set_defaults(func=run_upload)


def run_upload(args) -> int:
    request = UploadRequest(
        image=args.image, pvc=args.pvc, namespace=args.namespace, file_name=args.file_name,
        storage_class=args.storage_class, access_modes=tuple(args.access_modes or ("ReadWriteOnce",)),
        size=args.size, uploader_image=args.uploader_image, expected_sha256=args.expected_sha256,
        timeout=args.timeout,
    )
    api = kube.api_client(args.kubeconfig, args.context)
    size = args.image.stat().st_size if args.image.is_file() else None
    with Progress(f"upload {args.image.name} -> {args.namespace}/{args.pvc}", size) as progress:
        result = DiskUploader(api, request, progress=progress).run()
    print(json.dumps(result.as_dict(), indent=2))
    return 0
