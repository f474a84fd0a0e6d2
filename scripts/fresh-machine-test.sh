#!/usr/bin/env bash
# The README's promise, tested from nothing: a stock Debian 12 root file system
# (mmdebstrap: minbase, Debian's usual sources, plus git to clone with), a clone of
# this commit with shared/ beside it as CI has it, then the two README commands in a
# chroot (in a private mount namespace, so nothing stays mounted), as root with CI=true.
# About 2 h on 2 cores (the control plane is built from source).
#   scripts/fresh-machine-test.sh [WORKDIR]     (default /var/tmp/loco-fresh; log: WORKDIR/log)
# Re-running reuses the root file system; `rm -rf WORKDIR` starts from nothing again.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-/var/tmp/loco-fresh}
root=$work/rootfs
mkdir -p "$work"
exec > >(tee -a "$work/log") 2>&1
stage() { printf '\n[fresh %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [[ ! -e $root/etc/debian_version ]]; then
  command -v mmdebstrap >/dev/null || apt-get install -y -qq --no-install-recommends mmdebstrap
  stage "debian 12 root file system"
  rm -rf "$root.tmp"
  mmdebstrap --variant=minbase --include=ca-certificates,git bookworm "$root.tmp" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  mv "$root.tmp" "$root"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network this machine is on: its extra certificate authorities (an egress proxy's, say) are
# part of the machine, as the variables naming the CA bundle are part of its environment.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
ca_env=()
for name in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO; do
  if [[ -n ${!name:-} ]]; then ca_env+=("$name=${!name}"); fi
done

stage "clone of $(git -C "$repo" rev-parse --short HEAD)"
rm -rf "$root/root/loco-lan" "$root/root/shared"
git clone -q --no-local "$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir)" "$root/root/loco-lan"
git -C "$root/root/loco-lan" checkout -q "$(git -C "$repo" rev-parse HEAD)"
[[ -d $repo/../shared ]] && cp -r "$repo/../shared" "$root/root/shared" && chmod -R a-w "$root/root/shared"

# A login-less shell in the chroot, with only what a fresh root shell has in its environment.
in_root() {
  unshare --mount --fork bash -euo pipefail -c '
    root=$1 ca_env=$2; shift 2
    mount --make-rprivate /
    # The root file system a chroot sees must be a mount point, as on a machine (bwrap needs it).
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb CI=true LANG=C.UTF-8 $ca_env \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      bash -euo pipefail -c "cd /root/loco-lan && $*"' _ "$root" "${ca_env[*]}" "$@"
}
stage "scripts/bootstrap.sh"
in_root scripts/bootstrap.sh
stage "scripts/test.sh"
in_root scripts/test.sh
stage "passed: both README commands on a fresh Debian 12"
