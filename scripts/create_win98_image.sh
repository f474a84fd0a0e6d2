#!/usr/bin/env bash
# Rebuild the Windows 98 snapshot when the registry cannot supply it.
# A thin front door to `loco snapshot rebuild` (python -m loco_lan.image_build); e.g.
#   scripts/create_win98_image.sh images/win98.qcow2 --from-disk win98.vhd
#   scripts/create_win98_image.sh images/win98.qcow2 --from-iso win98se.iso --vnc 127.0.0.1:1
#   scripts/create_win98_image.sh images/win98.qcow2 --from-disk win98.vmdk --push ghcr.io/you/snapshots:win98-base
# Run with --help for every option. Python: $LOCO_PYTHON, else the repo's .venv, else python3.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${LOCO_PYTHON:-}
if [[ -z $python ]]; then
  if [[ -x $repo/.venv/bin/python ]]; then python=$repo/.venv/bin/python; else python=python3; fi
fi
exec "$python" -m loco_lan.image_build "$@"
