"""``loco snapshot``: pull, push or rebuild the Windows 98 disk snapshot."""

import argparse
import json
from pathlib import Path

from loco_lan import image_build, snapshot
from loco_lan.errors import LocoError
from loco_lan.oci import DEFAULT_REFERENCE, Client, Credentials, Reference


def register(subparsers) -> None:
    parser = subparsers.add_parser("snapshot", help="pull, push or rebuild the Windows 98 disk snapshot")
    actions = parser.add_subparsers(dest="snapshot_action", required=True, metavar="ACTION")

    pull = actions.add_parser("pull", help="pull a snapshot to a file (no-op when it is already there)")
    pull.add_argument("reference", help=f"registry/repository:tag or @sha256:digest ({DEFAULT_REFERENCE})")
    pull.add_argument("dest", type=Path, help="where the qcow2 goes")
    pull.add_argument("--path-in-image", dest="member", metavar="PATH",
                      help="the qcow2 inside the image's tar layer (default: its only *.qcow2)")
    pull.add_argument("--force", action="store_true", help="pull even if the recorded digest matches")
    pull.add_argument("--check", action="store_true", help="only say what would happen")
    _registry_options(pull)
    pull.set_defaults(func=_pull)

    push = actions.add_parser("push", help="publish a qcow2 as an OCI artifact")
    push.add_argument("file", type=Path, help="the qcow2 to publish")
    push.add_argument("reference", help="registry/repository:tag to publish to")
    push.add_argument("--source", help="where the image came from (org.opencontainers.image.source)")
    push.add_argument("--chunk-size", type=_mebibytes, default=0, metavar="MiB",
                      help="upload in resumable chunks of this size (default: one request)")
    push.add_argument("--check", action="store_true", help="only say what would happen")
    _registry_options(push)
    push.set_defaults(func=_push)

    rebuild = actions.add_parser("rebuild", help="build the snapshot from a source disk or an installer ISO")
    rebuild.add_argument("dest", type=Path, help="the qcow2 to write (plus <dest>.sha256)")
    origin = rebuild.add_mutually_exclusive_group(required=True)
    origin.add_argument("--from-disk", dest="source", type=Path, metavar="DISK",
                        help="existing disk (VHD/VHDX, VMDK, raw or qcow2) to convert")
    origin.add_argument("--from-iso", dest="iso", type=Path, metavar="ISO",
                        help="installer ISO to boot on a blank disk (finish setup over VNC)")
    rebuild.add_argument("--format", dest="source_fmt", metavar="FMT",
                         help="qemu-img format of the source disk (default: from its suffix or contents)")
    rebuild.add_argument("--disk-size", default=image_build.DEFAULT_DISK_SIZE, help="ISO install: disk size")
    rebuild.add_argument("--memory", type=int, default=image_build.DEFAULT_MEMORY_MB, help="ISO install: MiB")
    rebuild.add_argument("--vga", choices=image_build.VGA_CHOICES, default="std", help="ISO install: VGA")
    rebuild.add_argument("--vnc", default="127.0.0.1:0", help="ISO install: VNC display (host:display)")
    rebuild.add_argument("--install-timeout", type=float, default=image_build.DEFAULT_INSTALL_TIMEOUT,
                         metavar="SECONDS", help="ISO install: give up unless the guest powers off by then")
    rebuild.add_argument("--push", dest="push_to", metavar="REFERENCE", help="publish the result there")
    _registry_options(rebuild)
    rebuild.set_defaults(func=_rebuild)


def _registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry")
    group.add_argument("--username", help="registry user (default $LOCO_REGISTRY_USERNAME)")
    group.add_argument("--password-file", type=Path,
                       help="file holding the password or access token (default $LOCO_REGISTRY_PASSWORD)")
    group.add_argument("--token-file", type=Path,
                       help="file holding a bearer token sent as is (default $LOCO_REGISTRY_TOKEN)")
    group.add_argument("--ca-bundle", type=Path, help="PEM CA bundle for registries with a private CA")
    group.add_argument("--insecure-http", action="store_true", help="plain HTTP (loopback registries only)")
    group.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per network operation")
    group.add_argument("--retries", type=int, default=4, help="retries of a failed network operation")
    group.add_argument("--json", action="store_true", help="print the result as JSON")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="do not report progress")


def _mebibytes(text: str) -> int:
    try:
        return int(float(text) * (1 << 20))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None


def client_from_args(args: argparse.Namespace, *references: str | None) -> Client:
    if args.insecure_http:
        for text in filter(None, references):
            ref = Reference.parse(text)
            if not ref.is_loopback:
                raise LocoError(f"--insecure-http is for loopback registries only, not {ref.registry}")
    token = None
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise LocoError(f"cannot read token file {args.token_file}: {exc.strerror}") from None
    credentials = Credentials.resolve(args.username, password_file=args.password_file, token=token)
    return Client(
        credentials, plain_http=args.insecure_http, ca_bundle=args.ca_bundle, timeout=args.timeout,
        retries=args.retries,
    )


def _report(args: argparse.Namespace, result) -> int:
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.summary())
    return 0


def _pull(args: argparse.Namespace) -> int:
    client = client_from_args(args, args.reference)
    result = snapshot.pull(
        args.reference, args.dest, client=client, member=args.member, force=args.force, check_mode=args.check,
        progress=args.progress,
    )
    return _report(args, result)


def _push(args: argparse.Namespace) -> int:
    client = client_from_args(args, args.reference)
    result = snapshot.push(
        args.file, args.reference, client=client, source=args.source, chunk_size=args.chunk_size,
        check_mode=args.check, progress=args.progress,
    )
    return _report(args, result)


def _rebuild(args: argparse.Namespace) -> int:
    client = client_from_args(args, args.push_to) if args.push_to else None
    built = image_build.rebuild(
        args.dest, source=args.source, source_fmt=args.source_fmt, iso=args.iso, push_to=args.push_to,
        client=client, progress=args.progress, disk_size=args.disk_size, memory=args.memory, vga=args.vga,
        vnc=args.vnc, timeout=args.install_timeout,
    )
    if args.json:
        print(json.dumps(built.as_dict(), indent=2))
    else:
        pushed = f", pushed as {built.pushed_digest}" if built.pushed_digest else ""
        print(f"built: {built.path} ({built.sha256}{pushed})")
    return 0
