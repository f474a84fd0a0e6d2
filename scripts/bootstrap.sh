#!/usr/bin/env bash
# Set everything up, then run the main job: the bootstrap playbook against the
# embedded local cluster (inventories/local). Extra arguments go to ansible-playbook.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/setup.sh"
# shellcheck source=env.sh
source "$here/env.sh"
cd "$repo"
exec ansible-playbook -i inventories/local playbooks/bootstrap.yml "$@"
