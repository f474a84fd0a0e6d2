#!/usr/bin/env bash
# Set everything up, then run every check: lint, ansible-test sanity, pytest
# (unit and integration on real components) and molecule. Fails on any failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/setup.sh"
# shellcheck source=env.sh
source "$here/env.sh"
cd "$repo"
step() { printf '\n== %s\n' "$*"; }

step "ruff"
ruff check runtime tests bench collections/ansible_collections/loco/lan/plugins

step "ansible-lint (production profile)"
ansible-lint

step "ansible-test sanity"
"$here/sanity.sh"

step "pytest"
set +e
pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure of the suite, not a pass.
if ((rc == 5)); then echo "pytest collected no tests" >&2; exit 1; fi
((rc == 0)) || exit "$rc"

step "molecule (every scenario: converge, idempotence, verify)"
molecule test --all
