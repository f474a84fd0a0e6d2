"""Snapshot pull throughput: ours vs ``skopeo copy`` (Debian), same image, same loopback registry, same run.

A qcow2 of random data (incompressible, default 1 GiB) is pushed to a private
docker-registry on 127.0.0.1 as form (b) (the layer is the qcow2) and as form (a)
(a zstd tar layer holding it).  Each tool then pulls it ``--runs`` times, turns
interleaved, into a fresh directory on the same filesystem:

- ours: ``loco_lan.snapshot.pull`` in its own process - resolve, stream with
  sha256 verification, extract (form (a): zstd + tar), ``qemu-img check``, rename,
  record.  Its peak RSS comes from ``wait4``.
- skopeo: ``skopeo copy docker://... dir:...`` - fetch and verify the blobs into a
  directory.  For form (a) it leaves the compressed tar, so the workflow today's
  consumers run, skopeo copy then ``tar -x``, is timed as well (informative).

Goal: ours >= 0.9x skopeo's throughput; our peak RSS < 100 MB.

    python bench/bench_pull.py [--size-mib 1024] [--runs 3]
"""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from loco_lan.fsutil import file_sha256
from loco_lan.localregistry import LocalRegistry
from loco_lan.oci import Client, Reference, push_artifact, push_image

OURS = """
import sys
from loco_lan.oci import Client
from loco_lan.snapshot import pull
pull(sys.argv[1], sys.argv[2], client=Client(plain_http=True))
"""


def random_qcow2(path: Path, size_mib: int) -> Path:
    raw = path.with_suffix(".raw")
    with raw.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(1 << 20))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


@contextlib.contextmanager
def published_snapshot(work: Path, size_mib: int) -> Iterator[tuple[LocalRegistry, Reference, Reference, int]]:
    """A random qcow2 pushed to a loopback registry as form (b) and as form (a) (zstd tar
    layer): the registry, both references and the qcow2's size (shared with bench_resume)."""
    disk = random_qcow2(work / "win98.qcow2", size_mib)
    with LocalRegistry(work / "registry") as registry:
        client = Client(plain_http=True)
        artifact = Reference.parse(f"{registry.host}/bench/win98:artifact")
        push_artifact(client, disk, artifact, file_sha256(disk))
        image = Reference.parse(f"{registry.host}/bench/win98:image")
        push_image(client, disk, image, compression="zstd")
        yield registry, artifact, image, disk.stat().st_size


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode()}")
    process.stderr.close()
    return elapsed, usage.ru_maxrss * 1024


def compare(name: str, ref: Reference, size: int, work: Path, runs: int, untar: bool) -> tuple[float, int]:
    ours, theirs, theirs_untarred, rss = [], [], [], []
    for run in range(runs):
        out = work / f"out-{run}"
        seconds, peak = timed([sys.executable, "-c", OURS, str(ref), str(out / "win98.qcow2")])
        ours.append(seconds)
        rss.append(peak)
        shutil.rmtree(out)
        seconds, _ = timed(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                            f"docker://{ref}", f"dir:{out}"])
        theirs.append(seconds)
        if untar:  # GNU tar recognises the compression itself
            layer = max(out.iterdir(), key=lambda p: p.stat().st_size)
            (out / "x").mkdir()
            theirs_untarred.append(seconds + timed(["tar", "-xf", str(layer), "-C", str(out / "x")])[0])
        shutil.rmtree(out)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    ratio = theirs_s / ours_s
    mib = size / (1 << 20)
    print(f"{name}: ours {mib / ours_s:6.1f} MiB/s ({ours_s:.2f} s)  skopeo copy {mib / theirs_s:6.1f} MiB/s "
          f"({theirs_s:.2f} s)  ratio {ratio:.2f}x  our peak RSS {max(rss) / 1e6:.1f} MB")
    if untar:
        both = statistics.median(theirs_untarred)
        print(f"{' ' * len(name)}  skopeo copy + tar -x {mib / both:6.1f} MiB/s ({both:.2f} s)  "
              f"ratio {both / ours_s:.2f}x (informative)")
    return ratio, max(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("LOCO_BENCH_DIR")) as tmp:
        work = Path(tmp)
        with published_snapshot(work, args.size_mib) as (_, artifact, image, size):
            print(f"snapshot: {size / (1 << 20):.0f} MiB qcow2 of random data; median of {args.runs} runs each")
            results = [
                compare("form (b) artifact  ", artifact, size, work, args.runs, untar=False),
                compare("form (a) zstd image", image, size, work, args.runs, untar=True),
            ]
    worst, peak = min(r for r, _ in results), max(p for _, p in results)
    print(f"goal >= 0.90x skopeo: {'met' if worst >= 0.9 else 'NOT met'} (worst {worst:.2f}x); "
          f"goal peak RSS < 100 MB: {'met' if peak < 100e6 else 'NOT met'} ({peak / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
