# Sourced by the project's scripts: the venv and the pinned binaries first on PATH.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$repo/.venv/bin:${LOCO_CACHE_DIR:-$HOME/.cache/loco-lan}/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg"
