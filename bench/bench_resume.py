"""Resume after a cut: bytes downloaded again after the connection drops at ~50 %, ÷ snapshot size.

A qcow2 of random data is pushed to a private docker-registry on 127.0.0.1 (form (b),
and form (a) as a zstd tar layer).  Each pull goes through a loopback TCP proxy
that counts every byte it sends back.  A clean pull through it gives the baseline;
then the proxy drops the connection once half of that has gone through, and the
extra bytes the pull needed to finish are what the cut cost.  The peer is
``skopeo copy --retry-times 3`` (Debian) through the same proxy, same run.

Goal: ours < 5 % re-downloaded.

    python bench/bench_resume.py [--size-mib 512]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_pull import published_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))  # the tests' flaky network
from cuttingproxy import CuttingProxy  # noqa: E402

from loco_lan.oci import Client, Reference  # noqa: E402
from loco_lan.progress import human_bytes  # noqa: E402
from loco_lan.snapshot import pull  # noqa: E402


def through_proxy(registry_host: str, ref: Reference, cut_after: int | None, fetch: Callable):
    """Bytes the proxy sent back during ``fetch(reference via proxy)``, and how it ended."""
    with CuttingProxy(registry_host, cut_after) as proxy:
        try:
            fetch(Reference(proxy.host, ref.repository, ref.tag))
            outcome = "ok"
        except Exception as exc:  # the peer may give up: that is a result too
            detail = getattr(exc, "stderr", None) or str(exc)
            outcome = f"failed ({detail.strip().splitlines()[-1][:100]})"
        return proxy.downstream, outcome


def measure(name: str, registry_host: str, ref: Reference, size: int, fetch: Callable) -> float | None:
    baseline, outcome = through_proxy(registry_host, ref, None, fetch)
    assert outcome == "ok", outcome
    total, outcome = through_proxy(registry_host, ref, baseline // 2, fetch)
    if outcome != "ok":
        print(f"  {name:7} cut at {human_bytes(baseline // 2)}: {outcome}")
        return None
    extra = total - baseline
    cut = human_bytes(baseline // 2)
    print(f"  {name:7} cut at {cut}: {human_bytes(extra)} fetched again = {extra / size:.6%} of the snapshot")
    return extra / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("LOCO_BENCH_DIR")) as tmp:
        work = Path(tmp)
        with published_snapshot(work, args.size_mib) as (registry, artifact, image, size):
            print(f"snapshot: {size / (1 << 20):.0f} MiB qcow2 of random data")
            client = Client(plain_http=True, backoff=0.1)

            def ours(ref: Reference) -> None:
                pull(ref, work / "ours" / "win98.qcow2", client=client, force=True)

            def skopeo(ref: Reference) -> None:
                shutil.rmtree(work / "skopeo", ignore_errors=True)
                subprocess.run(
                    ["skopeo", "--insecure-policy", "copy", "--retry-times", "3", "--src-tls-verify=false",
                     f"docker://{ref}", f"dir:{work / 'skopeo'}"],
                    check=True, capture_output=True, text=True,
                )

            worst = 0.0
            for label, ref in (("form (b) artifact", artifact), ("form (a) zstd image", image)):
                print(label)
                mine = measure("ours", registry.host, ref, size, ours)
                measure("skopeo", registry.host, ref, size, skopeo)
                worst = max(worst, 1.0 if mine is None else mine)
    print(f"goal < 5% re-downloaded: {'met' if worst < 0.05 else 'NOT met'} (worst {worst:.2%})")


if __name__ == "__main__":
    main()
