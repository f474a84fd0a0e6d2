#!/usr/bin/env bash
# Installs everything loco.lan needs on a Debian 12 machine, idempotently:
# Debian packages, a Python 3.12 venv with pinned dependencies, kubernetes.core
# (unpacked from PyPI's ansible wheel: no Galaxy needed), and the control-plane,
# kwok and helm binaries built from pinned Go modules into ~/.cache/loco-lan.
# A second run installs and builds nothing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${LOCO_CACHE_DIR:-$HOME/.cache/loco-lan}
bin=$cache/bin
# shellcheck source=../tools/versions.env
source "$repo/tools/versions.env"
log() { printf '[setup] %s\n' "$*"; }
mkdir -p "$bin"

# -- Debian packages -------------------------------------------------------
apt_packages=(qemu-system-x86 qemu-utils docker-registry skopeo chromium bubblewrap
  socat rsync patch iproute2 iputils-ping arping nftables apache2-utils zstd)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- Python ----------------------------------------------------------------
python=${LOCO_PYTHON:-}
if [[ -z $python ]]; then
  for candidate in "$(pyenv root 2>/dev/null)/versions/3.12"* /usr/bin/python3.12; do
    [[ -x $candidate/bin/python3 ]] && { python=$candidate/bin/python3; break; }
    [[ -x $candidate && ! -d $candidate ]] && { python=$candidate; break; }
  done
fi
[[ -n $python ]] || { echo "setup: Python 3.12 not found (set LOCO_PYTHON)" >&2; exit 1; }
venv=$repo/.venv
stamp=$venv/.loco-installed
want=$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  log "creating the Python venv in $venv with $python"
  [[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$repo/constraints.txt" -e "$repo[dev]"
  echo "$want" >"$stamp"
fi

# -- kubernetes.core, unpacked from the ansible wheel (Galaxy is not needed) --
ansible_version=$(sed -n "s/^ansible==//p" "$repo/tools/collections.txt")
kcore=$cache/collections/ansible_collections/kubernetes/core
if [[ $(cat "$kcore/.from-ansible" 2>/dev/null) != "$ansible_version" ]]; then
  log "unpacking kubernetes.core from ansible==$ansible_version"
  tmp=$(mktemp -d)
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ansible_version"
  "$venv/bin/python" - "$tmp"/ansible-*.whl "$cache/collections" <<'PY'
import sys, zipfile, shutil, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
target = dest / "ansible_collections/kubernetes/core"
shutil.rmtree(target, ignore_errors=True)
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith("ansible_collections/kubernetes/core/"):
            zf.extract(name, dest)
PY
  rm -rf "$tmp"
  echo "$ansible_version" >"$kcore/.from-ansible"
fi

# -- MicroPython (WebAssembly, from npm) to run the EV3 brick's code in tests --------
lock=$repo/tools/micropython/package-lock.json
if [[ $(cat "$repo/tools/micropython/node_modules/.loco-lock" 2>/dev/null) != $(sha256sum <"$lock") ]]; then
  log "installing MicroPython for the EV3 tests (npm)"
  npm ci --silent --no-audit --no-fund --prefix "$repo/tools/micropython" >/dev/null
  sha256sum <"$lock" >"$repo/tools/micropython/node_modules/.loco-lock"
fi

# -- ansible-test: pip bootstrap without its download site -------------------
pip_for_test=$("$venv/bin/python" -c 'import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", src).group(1))')
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/tools/ansible-test/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_for_test//./_}.py"

# -- Go binaries -----------------------------------------------------------
export GOFLAGS=-buildvcs=false
have() { [[ -x $bin/$1 && $(cat "$bin/.$1.version" 2>/dev/null) == "$2" ]]; }
built() { mv "$bin/$1.tmp" "$bin/$1"; echo "$2" >"$bin/.$1.version"; }

kv=$KUBERNETES_VERSION minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kv -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  have "$cmd" "$kv" && continue
  log "building $cmd $kv (first time only: minutes on 2 cores)"
  (cd "$repo/tools/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
  built "$cmd" "$kv"
done
# etcd comes from the same module graph, so it is the version this Kubernetes release is tested with
# (Debian 12's etcd 3.4 lacks the watch progress requests that kube-apiserver 1.35 relies on).
etcd_version=$(cd "$repo/tools/kube" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if ! have etcd "$etcd_version"; then
  log "building etcd $etcd_version"
  (cd "$repo/tools/kube" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  built etcd "$etcd_version"
fi

go_install() {  # NAME VERSION PACKAGE [LDFLAGS]
  have "$1" "$2" && return
  log "building $1 $2"
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin go install -trimpath -ldflags "-s -w ${4:-}" "$3@$2"
  mv "$gobin/$1" "$bin/$1.tmp" && rmdir "$gobin"
  built "$1" "$2"
}
# kwok is built from its published module plus our patches (tools/kwok/*.patch).
kwok_id="$KWOK_VERSION+$(cat "$repo"/tools/kwok/*.patch | sha256sum | cut -c1-12)"
if ! have kwok "$kwok_id"; then
  log "building kwok $kwok_id"
  src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  cp -r "$src/." "$work" && chmod -R u+w "$work"
  for p in "$repo"/tools/kwok/*.patch; do patch -s -d "$work" -p1 <"$p"; done
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin/kwok.tmp" ./cmd/kwok)
  rm -rf "$work"
  built kwok "$kwok_id"
fi
go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

# kwok's own CRDs and stage definitions, taken from its module as published.
assets=$cache/kwok
if [[ $(cat "$assets/.version" 2>/dev/null) != "$KWOK_VERSION-fast" ]]; then
  src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$assets" && mkdir -p "$assets/crds" "$assets/stages"
  cp "$src"/kustomize/crd/bases/*.yaml "$assets/crds/"
  cp "$src"/kustomize/stage/node/fast/node-initialize.yaml \
     "$src"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
     "$src"/kustomize/stage/pod/fast/pod-*.yaml "$assets/stages/"
  echo "$KWOK_VERSION-fast" >"$assets/.version"
fi

log "ready: venv $venv, binaries in $bin"
