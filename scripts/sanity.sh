#!/usr/bin/env bash
# ansible-test sanity for the loco.lan collection with the venv's Python.
# ansible-test wants the collection in a tree of its own: it gets a copy of the
# tracked files (plus untracked, not-ignored ones) under a temp ansible_collections/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
src=$repo/collections/ansible_collections/loco/lan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/loco/lan
mkdir -p "$dest"
(cd "$src" && git ls-files -co --exclude-standard . | rsync -a --files-from=- . "$dest/")
cd "$dest"
ansible-test sanity --venv --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"
